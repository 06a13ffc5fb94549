/** A native confirmation (accessible, keyboard-friendly, no extra dependency). */
export function confirmed(question: string): boolean {
  return window.confirm(question);
}

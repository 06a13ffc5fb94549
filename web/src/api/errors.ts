// The /v1 error envelope, as a thrown error the pages can show field by field.
export interface FieldDetail {
  field: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: FieldDetail[] = [],
  ) {
    super(message);
    this.name = "ApiError";
  }

  /** The API's message for one field (`contact.phone` also matches `phone`), if any. */
  fieldMessage(field: string): string | undefined {
    const hit = this.details.find(
      (d) => d.field === field || d.field.endsWith(`.${field}`) || field.endsWith(`.${d.field}`),
    );
    return hit?.message;
  }
}

/** An ApiError from a response body of either shape (or none at all). */
export function toApiError(status: number, body: unknown): ApiError {
  const envelope = (body as { error?: unknown } | null)?.error;
  if (envelope && typeof envelope === "object") {
    const e = envelope as { code?: string; message?: string; details?: FieldDetail[] | null };
    return new ApiError(status, e.code ?? "error", e.message ?? `HTTP ${status}`, e.details ?? []);
  }
  return new ApiError(status, "error", `HTTP ${status}`);
}

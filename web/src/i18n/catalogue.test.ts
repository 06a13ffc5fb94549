// Every user-visible string comes from the catalogue: JSX text and the attributes people read
// (label, aria-label, placeholder, title, alt) must not be literal English in the sources.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

import en from "./en.json";

const SRC = fileURLToPath(new URL("..", import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return path.endsWith(".tsx") ? [path] : [];
  });
}

const JSX_TEXT = /(?<![=\-])>\s*([A-Za-z][^<>{}]*[A-Za-z.!?])\s*</g;
const READ_ATTR = /\b(label|aria-label|placeholder|title|alt|description)="([^"]*[A-Za-z][^"]*)"/g;

function keys(node: unknown, prefix = ""): string[] {
  if (typeof node === "string") return [prefix];
  return Object.entries(node as Record<string, unknown>).flatMap(([k, v]) =>
    keys(v, prefix ? `${prefix}.${k}` : k),
  );
}

describe("the English catalogue", () => {
  it("holds every string the sources show", () => {
    const literals: string[] = [];
    for (const file of sources(SRC)) {
      const text = readFileSync(file, "utf8");
      for (const m of text.matchAll(JSX_TEXT)) literals.push(`${file}: ${m[1]}`);
      for (const m of text.matchAll(READ_ATTR)) literals.push(`${file}: ${m[1]}="${m[2]}"`);
    }
    expect(literals).toEqual([]);
  });

  it("has every key the sources use", () => {
    const known = new Set(keys(en));
    const missing: string[] = [];
    for (const file of sources(SRC)) {
      const text = readFileSync(file, "utf8");
      for (const m of text.matchAll(/\bt\("([a-zA-Z0-9_.]+)"/g)) {
        const key = m[1]!;
        if (!known.has(key) && !known.has(`${key}_other`)) missing.push(`${file}: ${key}`);
      }
    }
    expect(missing).toEqual([]);
  });
});

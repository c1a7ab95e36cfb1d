/**
 * Lower-casing as HF tokenizers' Rust normalizers do it: one character at a time (`char::to_lowercase`).
 * That is String.prototype.toLowerCase except for the one context-dependent rule of Unicode's default
 * case mapping, the final sigma: toLowerCase (like Python's str.lower) turns a word-final Σ into ς,
 * the Rust normalizers always give σ. Writing every Σ as σ first leaves toLowerCase nothing to decide.
 */
export function sigmaAsMedial(text: string): string {
  return text.replace(/\u03a3/g, '\u03c3');
}

/** `text` lower-cased one character at a time (a final Σ becomes σ, not ς). */
export function lowercaseEachChar(text: string): string {
  return sigmaAsMedial(text).toLowerCase();
}

/**
 * Windows-1252's characters for bytes 0x80–0x9F, where it differs from Latin-1 (which puts the C1
 * control characters there). The five bytes Windows-1252 leaves unassigned (0x81, 0x8D, 0x8F, 0x90,
 * 0x9D) keep their Latin-1 meaning, as browsers decode them. Index = byte − 0x80.
 */
export const CP1252_C1: readonly string[] = [
  '\u20ac', '\u0081', '\u201a', '\u0192', '\u201e', '\u2026', '\u2020', '\u2021',
  '\u02c6', '\u2030', '\u0160', '\u2039', '\u0152', '\u008d', '\u017d', '\u008f',
  '\u0090', '\u2018', '\u2019', '\u201c', '\u201d', '\u2022', '\u2013', '\u2014',
  '\u02dc', '\u2122', '\u0161', '\u203a', '\u0153', '\u009d', '\u017e', '\u0178',
];


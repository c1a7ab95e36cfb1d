import { promises as fs } from 'node:fs';
import { parse, CsvError } from 'csv-parse/sync';
import { Img2PromptError, readErrorReason } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { decodeUtf8Strict, stripBom } from './utf8.js';
import { imgIdProblem } from './img-id.js';

/** One row of a prompts CSV (Kaggle's `prompts.csv` layout): the prompt that made image `imgId`. */
export interface PromptRow {
  imgId: string;
  prompt: string;
}

export const PROMPTS_HEADER = ['imgId', 'prompt'] as const;

const NEWLINE = 0x0a;

/**
 * Read a prompts CSV strictly. The header must name an `imgId` and a `prompt` column (any order; other
 * columns are ignored); every row must have as many fields as the header, a valid unique imgId and a
 * non-blank prompt. A BOM and CRLF line endings are accepted, blank lines are skipped. Errors name the file
 * and the line where the offending record starts.
 */
export async function readPromptsCsv(file: string): Promise<PromptRow[]> {
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file);
  } catch (err) {
    throw new Img2PromptError(file, `cannot read: ${readErrorReason(err)}`, { code: 'FILE_UNREADABLE', cause: err });
  }
  return parsePromptsCsv(file, bytes);
}

/** `readPromptsCsv` on bytes already in memory; `file` is only used in messages. */
export function parsePromptsCsv(file: string, bytes: Uint8Array): PromptRow[] {
  // CRLF is folded to LF first: csv-parse counts a CRLF inside a quoted field as two lines, which would
  // make every later line number wrong.
  const text = stripBom(decodeUtf8Strict(file, bytes)).replace(/\r\n/g, '\n');
  if (text.trim() === '') {
    throw new Img2PromptError(file, 'empty file: expected a header line "imgId,prompt" and one row per image', { code: 'FILE_INVALID' });
  }
  const records = parseRecords(file, Buffer.from(text, 'utf8'));
  const [header, ...rows] = records;
  const idColumn = findColumn(file, header.fields, 'imgId');
  const promptColumn = findColumn(file, header.fields, 'prompt');
  if (rows.length === 0) throw new Img2PromptError(file, 'no rows after the header');

  const firstLineOf = new Map<string, number>();
  return rows.map(({ fields, line }) => {
    const imgId = fields[idColumn];
    const prompt = fields[promptColumn];
    const idProblem = imgIdProblem(imgId);
    if (idProblem) throw new Img2PromptError(file, `line ${line}: ${idProblem}`);
    const earlier = firstLineOf.get(imgId);
    if (earlier !== undefined) {
      throw new Img2PromptError(file, `line ${line}: duplicate imgId "${imgId}" (first on line ${earlier})`);
    }
    firstLineOf.set(imgId, line);
    if (prompt.trim() === '') throw new Img2PromptError(file, `line ${line}: empty prompt for imgId "${imgId}"`);
    return { imgId, prompt };
  });
}

interface CsvRecord {
  fields: string[];
  /** Line on which the record starts (1-based). */
  line: number;
}

function parseRecords(file: string, input: Buffer): CsvRecord[] {
  const lines = new LineLocator(input);
  const records: CsvRecord[] = [];
  let consumed = 0; // byte offset just past the last record parsed
  try {
    parse(input, {
      delimiter: ',',
      quote: '"',
      escape: '"',
      record_delimiter: '\n',
      skip_empty_lines: true,
      relax_quotes: false,
      relax_column_count: false,
      on_record: (fields: string[], context) => {
        records.push({ fields, line: lines.recordStartingAfter(consumed) });
        consumed = context.bytes;
        return null; // collected above; nothing for csv-parse to keep
      },
    });
  } catch (err) {
    if (!(err instanceof CsvError)) throw err;
    const line = lines.recordStartingAfter(consumed);
    throw new Img2PromptError(file, `line ${line}: ${csvErrorReason(err, records[0]?.fields.length)}`, { code: 'FILE_INVALID', cause: err });
  }
  return records;
}

function csvErrorReason(err: CsvError, headerFields: number | undefined): string {
  switch (err.code) {
    case 'CSV_QUOTE_NOT_CLOSED':
      return 'unclosed quote: the quoted field starting here runs to the end of the file';
    case 'CSV_INVALID_CLOSING_QUOTE':
    case 'CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE':
      return 'unexpected text after a closing quote (a quote inside a quoted field must be doubled: "")';
    case 'INVALID_OPENING_QUOTE':
      return 'quote inside an unquoted field (quote the whole field and double the inner quote: "")';
    case 'CSV_RECORD_INCONSISTENT_FIELDS_LENGTH': {
      const got = Array.isArray(err.record) ? err.record.length : '?';
      return `expected ${headerFields ?? '?'} fields like the header, got ${got}`;
    }
    default:
      return `malformed CSV (${err.message})`;
  }
}

function findColumn(file: string, header: string[], name: string): number {
  const index = header.indexOf(name);
  if (index < 0) {
    const found = header.map((h) => JSON.stringify(h)).join(', ');
    throw new Img2PromptError(file, `line 1: header has no "${name}" column (found ${found}); expected a header like imgId,prompt`, { code: 'FILE_INVALID' });
  }
  if (header.indexOf(name, index + 1) >= 0) {
    throw new Img2PromptError(file, `line 1: header has more than one "${name}" column`, { code: 'FILE_INVALID' });
  }
  return index;
}

/** Maps byte offsets of an LF-only buffer to line numbers, moving forward only (O(file size) in total). */
class LineLocator {
  private offset = 0;
  private line = 1;

  constructor(private readonly bytes: Uint8Array) {}

  /** Line of the first record at or after `offset`: csv-parse skips blank lines before a record. */
  recordStartingAfter(offset: number): number {
    this.advanceTo(offset);
    let line = this.line;
    for (let i = offset; i < this.bytes.length && this.bytes[i] === NEWLINE; i++) line++;
    return line;
  }

  private advanceTo(offset: number): void {
    for (;;) {
      const next = this.bytes.indexOf(NEWLINE, this.offset);
      if (next < 0 || next >= offset) break;
      this.line++;
      this.offset = next + 1;
    }
  }
}

/**
 * Write a prompts CSV (`imgId,prompt`, LF line endings, fields quoted only where CSV needs it) atomically.
 * Rows are checked first with the same rules `readPromptsCsv` applies, so what is written reads back.
 */
export async function writePromptsCsv(file: string, rows: readonly PromptRow[]): Promise<void> {
  checkPromptRows(file, rows, 'a prompts CSV');
  const lines = [PROMPTS_HEADER.join(',')];
  for (const row of rows) lines.push(promptsLine(row));
  await writeFileAtomic(file, lines.join('\n') + '\n');
}

/** One row of a prompts CSV, without its newline. */
export function promptsLine({ imgId, prompt }: PromptRow): string {
  return `${imgId},${csvField(prompt)}`;
}

/** The rules `readPromptsCsv` applies, checked before writing `what` (any CSV of imgId,prompt,... rows). */
export function checkPromptRows(file: string, rows: readonly PromptRow[], what: string): void {
  const seen = new Set<string>();
  rows.forEach((row, i) => {
    checkPromptRow(file, row, i + 1, seen);
    seen.add(row.imgId);
  });
  if (rows.length === 0) throw new Img2PromptError(file, `cannot write ${what} with no rows`);
}

/** The rules of `checkPromptRows` that concern one row (the `n`th), in the same order. */
export function checkPromptRow(file: string, { imgId, prompt }: PromptRow, n: number, seen?: ReadonlySet<string>): void {
  const where = `row ${n}`;
  const idProblem = imgIdProblem(imgId);
  if (idProblem) throw new Img2PromptError(file, `cannot write ${where}: ${idProblem}`);
  if (seen?.has(imgId)) throw new Img2PromptError(file, `cannot write ${where}: duplicate imgId "${imgId}"`);
  if (typeof prompt !== 'string' || prompt.trim() === '') {
    throw new Img2PromptError(file, `cannot write ${where}: empty prompt for imgId "${imgId}"`);
  }
}

/** Quote a field only when it holds a delimiter, quote or line break, or edge whitespace a reader might trim. */
export function csvField(value: string): string {
  if (!/[",\r\n]|^\s|\s$/.test(value)) return value;
  return `"${value.replace(/"/g, '""')}"`;
}

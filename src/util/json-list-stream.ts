import { BufferedTextOutput } from './buffered-text-output.js';

/**
 * A JSON file `{ ...fields, "<list>": [ ... ] }` laid out as `JSON.stringify(value, null, 2)` lays it
 * out, written item by item (interrogate --details: one item per image), so that memory holds one
 * buffer of items, not the list. The bytes are those of the one-shot `JSON.stringify(…, null, 2) + '\n'`;
 * like every output the file appears only at `commit()`, whole.
 */

/** A string no item can hold (JSON escapes control characters): where the items go in the layout. */
const MARK = '\u0000items\u0000';

export class JsonListStream {
  private items = 0;

  private constructor(
    private readonly out: BufferedTextOutput,
    /** The file up to the first item, then from after the last; `empty`: the whole file without items. */
    private readonly layout: { head: string; tail: string; empty: string },
  ) {}

  /** `fields` are the object's other keys (in order); the list is its last key, `list`. */
  static async create(file: string, fields: Record<string, unknown>, list: string): Promise<JsonListStream> {
    const framed = JSON.stringify({ ...fields, [list]: [MARK] }, null, 2);
    const marked = `\n    ${JSON.stringify(MARK)}\n`;
    const at = framed.indexOf(marked);
    const layout = { head: framed.slice(0, at + 1), tail: `${framed.slice(at + marked.length - 1)}\n`, empty: `${JSON.stringify({ ...fields, [list]: [] }, null, 2)}\n` };
    return new JsonListStream(await BufferedTextOutput.create(file), layout);
  }

  /** Appends one item of the list. */
  async add(item: unknown): Promise<void> {
    // Nested two levels deep: every line of the item moves right by two indents.
    const text = `${this.items === 0 ? '' : ',\n'}    ${JSON.stringify(item, null, 2).replace(/\n/g, '\n    ')}`;
    if (this.items === 0) await this.out.add(this.layout.head);
    this.items++;
    await this.out.add(text);
  }

  /** Writes the end of the file and publishes it. */
  commit(): Promise<void> {
    return this.out.commit(this.items === 0 ? this.layout.empty : this.layout.tail);
  }

  /** Drops the temp; the target is untouched. Does nothing after commit. */
  abort(): Promise<void> {
    return this.out.abort();
  }
}

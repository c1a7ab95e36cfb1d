import type { IdOrder } from './csv-stream.js';
import { forEachLine } from './line-reader.js';
import { EMBEDDING_DIM, SUBMISSION_HEADER, SUBMISSION_VALUE } from './submission-csv.js';
import { vectorNormIssue } from './validate.js';

const EID_TEXT = Array.from({ length: EMBEDDING_DIM }, (_, e) => String(e));
const COMMA = 0x2c;

/** Problems kept by `checkSubmissionInOrder`; a run's own output that fails has one cause, seldom many. */
const KEPT = 3;

/**
 * Checks a submission that a run wrote itself, whose layout is known to the byte: the header, then for
 * each id of `expectedIds` in turn exactly the rows `<id>_0` .. `<id>_383` in order, each value a finite
 * number, each vector of unit length (predict writes unit vectors; a norm that is off is refused), and
 * nothing after the last image.
 *
 * `validateSubmission` accepts any valid layout and so keeps every image's id and norm to find repeated
 * or missing images at the end (~100 bytes an image: 100 MB for a million). Here the order is known, so
 * a row is right or wrong when it is read and nothing is kept per image: a run of any size checks its
 * output in constant memory. Returns the first few problems (`line N: reason`) and how many there were.
 */
export async function checkSubmissionInOrder(file: string, expectedIds: IdOrder): Promise<{ problems: string[]; count: number }> {
  const problems: string[] = [];
  let count = 0;
  const report = (line: number | undefined, reason: string): void => {
    count++;
    if (problems.length < KEPT) problems.push(line === undefined ? reason : `line ${line}: ${reason}`);
  };

  const ids = expectedIds[Symbol.iterator]();
  let id: string | undefined; // the image whose rows come now
  let prefix = ''; // `${id}_`, built once an image rather than once a row
  let eId = EMBEDDING_DIM; // the next row of `id`; EMBEDDING_DIM: its block is done
  let sumOfSquares = 0;
  let images = 0;
  let stopped = false; // after the first misplaced row every later row would be misplaced too
  let sawHeader = false;


  await forEachLine(file, (text, line) => {
    if (stopped) return;
    if (line === 1) {
      sawHeader = true;
      if (text !== SUBMISSION_HEADER) {
        report(line, `bad header ${JSON.stringify(text.slice(0, 80))}: expected "${SUBMISSION_HEADER}"`);
        stopped = true;
      }
      return;
    }
    if (eId === EMBEDDING_DIM) {
      const next = ids.next();
      if (next.done) {
        report(line, `a row after the last image: ${JSON.stringify(text.slice(0, 80))}`);
        stopped = true;
        return;
      }
      id = next.value;
      prefix = `${id}_`;
      eId = 0;
      sumOfSquares = 0;
      images++;
    }
    // Hundreds of millions of rows at a million images: the key is compared in place, not built per row.
    const eIdText = EID_TEXT[eId]!;
    const comma = prefix.length + eIdText.length;
    if (!text.startsWith(prefix) || !text.startsWith(eIdText, prefix.length) || text.charCodeAt(comma) !== COMMA) {
      report(line, `expected row ${prefix}${eIdText}, got ${JSON.stringify(text.slice(0, 80))}`);
      stopped = true;
      return;
    }
    const valueText = text.slice(comma + 1);
    const value = SUBMISSION_VALUE.test(valueText) ? Math.fround(Number(valueText)) : NaN;
    if (!Number.isFinite(value)) report(line, `value ${JSON.stringify(valueText.slice(0, 40))} of ${prefix}${eIdText} is not a finite float32`);
    else sumOfSquares += value * value;
    eId++;
    if (eId === EMBEDDING_DIM) {
      const issue = vectorNormIssue(id!, Math.sqrt(sumOfSquares));
      // Predict writes unit vectors: a norm that validate would only warn about is refused here.
      if (issue) report(line, issue.reason);
    }
  });

  if (!sawHeader) {
    report(undefined, `empty file: expected a header line "${SUBMISSION_HEADER}" and ${EMBEDDING_DIM} rows per image`);
  } else if (!stopped) {
    if (eId < EMBEDDING_DIM) {
      report(undefined, `image "${id}" has ${eId} of ${EMBEDDING_DIM} rows (the file ends there)`);
    } else {
      const next = ids.next();
      if (!next.done) report(undefined, `missing image "${next.value}" (${images} of ${expectedIds.length} images are in the file)`);
    }
  }
  return { problems, count };
}

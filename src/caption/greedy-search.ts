import type { DecoderStepper, GeneratedCaption } from './decoder-stepper.js';
import { processScores, type ProcessorSettings } from './logits-processors.js';

/**
 * Greedy decoding as transformers' GenerationMixin._sample without sampling: the processors run on
 * the raw logits, the next token is the first index of the maximum, a row stops at the end token or
 * at maxLength (prompt included). Rows are independent, so a finished row leaves the batch at once
 * (transformers keeps feeding it padding; that changes nothing for the others).
 */
export async function greedySearch<Past>(
  model: DecoderStepper<Past>,
  images: number,
  prompt: readonly number[],
  settings: ProcessorSettings & { maxLength: number },
): Promise<GeneratedCaption[]> {
  const V = model.vocabSize;
  const sequences = Array.from({ length: images }, () => [...prompt]);
  let active = Array.from({ length: images }, (_, i) => i);
  let past: Past | undefined;
  let input = new BigInt64Array(images * prompt.length);
  for (let r = 0; r < images; r++) prompt.forEach((t, j) => (input[r * prompt.length + j] = BigInt(t)));
  let seqLen = prompt.length;
  while (active.length > 0 && prompt.length < settings.maxLength) {
    const out = await model.step(input, active.length, seqLen, active, past);
    const keep: number[] = [];
    const next: number[] = [];
    active.forEach((image, row) => {
      // Processed in place: a step's logits are the caller's (DecoderStepper.step), and a copy per row
      // and step was a vocabulary-sized allocation (120 KB for BLIP) for the collector to reclaim.
      const scores = out.logits.subarray(row * V, (row + 1) * V);
      const seq = sequences[image]!;
      processScores(scores, seq, settings);
      let best = 0;
      for (let v = 1; v < V; v++) if (scores[v]! > scores[best]!) best = v;
      seq.push(best);
      if (best !== settings.eosTokenId && seq.length < settings.maxLength) {
        keep.push(row);
        next.push(best);
      }
    });
    if (keep.length === 0) break;
    past = keep.length === active.length ? out.past : model.selectRows(out.past, keep);
    active = keep.map((row) => active[row]!);
    input = BigInt64Array.from(next, (t) => BigInt(t));
    seqLen = 1;
  }
  return sequences.map((tokens) => ({ tokens }));
}

import type { DecoderStepper, GeneratedCaption } from './decoder-stepper.js';
import { logSoftmaxInto, processScores, type ProcessorSettings } from './logits-processors.js';

/**
 * Beam search as transformers 5's GenerationMixin._beam_search does it, per image:
 *
 *   log_softmax of the logits, then the processors, plus each running beam's score; the top
 *   2·numBeams (beam, token) candidates over all beams; those ending with the end token or reaching
 *   maxLength finish: the best numBeams of the 2·numBeams that are not finishing keep running (the
 *   finishing ones among the first numBeams candidates join the finished hypotheses with their score
 *   divided by (generated length)^lengthPenalty, if they beat the worst finished one). An image stops
 *   when no running beam can beat its finished ones any more (the early-stopping heuristic, or with
 *   earlyStopping = true as soon as numBeams hypotheses are finished), or at maxLength. Scores are
 *   float32, and -1e9 marks what cannot be chosen, as there.
 *
 * All images' beams run as one batch; an image that stops leaves it (its result can no longer change).
 * At the first step every beam holds the prompt and only beam 0 counts (the others start at -1e9).
 */

export type EarlyStopping = boolean | 'never';

export interface BeamSettings extends ProcessorSettings {
  numBeams: number;
  maxLength: number;
  lengthPenalty: number;
  earlyStopping: EarlyStopping;
}

const NEG = -1e9;
const f32 = Math.fround;

interface ImageBeams {
  /** Running hypotheses (numBeams), best first, and their summed log-probabilities. */
  running: number[][];
  runningScores: number[];
  /** Finished hypotheses (numBeams slots; NEG score = empty slot), best first. */
  finished: number[][];
  finishedScores: number[];
  finishedFlags: boolean[];
  /** Whether a running beam could still beat the worst finished one (transformers' is_early_stop_heuristic_unsatisfied). */
  improvable: boolean;
  done: boolean;
}

/** Indices of the k largest values (ties: lower index first), largest first. */
function topK(values: ArrayLike<number>, k: number): number[] {
  const idx: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (idx.length === k && !(v > values[idx[k - 1]!]!)) continue;
    let pos = idx.length === k ? k - 1 : idx.length;
    while (pos > 0 && v > values[idx[pos - 1]!]!) pos--;
    idx.splice(pos, 0, i);
    if (idx.length > k) idx.pop();
  }
  return idx;
}

export async function beamSearch<Past>(model: DecoderStepper<Past>, images: number, prompt: readonly number[], s: BeamSettings): Promise<GeneratedCaption[]> {
  const V = model.vocabSize;
  const nb = s.numBeams;
  const keepK = 2 * nb;
  const promptLen = prompt.length;
  const states: ImageBeams[] = Array.from({ length: images }, () => ({
    running: Array.from({ length: nb }, () => [...prompt]),
    runningScores: Array.from({ length: nb }, (_, j) => (j === 0 ? 0 : NEG)),
    finished: Array.from({ length: nb }, () => [...prompt]),
    finishedScores: new Array<number>(nb).fill(NEG),
    finishedFlags: new Array<boolean>(nb).fill(false),
    improvable: true,
    done: false,
  }));
  let active = Array.from({ length: images }, (_, i) => i);
  let past: Past | undefined;
  let seqLen = promptLen;
  let input = new BigInt64Array(images * nb * promptLen);
  for (let r = 0; r < images * nb; r++) prompt.forEach((t, j) => (input[r * promptLen + j] = BigInt(t)));
  let curLen = promptLen;
  const logProbs = new Float32Array(V);
  const candidates = new Float32Array(nb * V);

  while (active.length > 0 && curLen < s.maxLength) {
    const out = await model.step(input, active.length * nb, seqLen, active, past);
    const nextRows: number[] = [];
    const nextTokens: number[] = [];
    const stillActive: number[] = [];
    active.forEach((image, a) => {
      const st = states[image]!;
      for (let j = 0; j < nb; j++) {
        const row = a * nb + j;
        logSoftmaxInto(logProbs, out.logits.subarray(row * V, (row + 1) * V));
        processScores(logProbs, st.running[j]!, s);
        const base = st.runningScores[j]!;
        for (let v = 0; v < V; v++) candidates[j * V + v] = f32(logProbs[v]! + base);
      }
      const top = topK(candidates, keepK);
      const topScores = top.map((i) => candidates[i]!);
      const topBeams = top.map((i) => Math.floor(i / V));
      const topTokens = top.map((i) => i % V);
      const topSeqs = top.map((_, k) => [...st.running[topBeams[k]!]!, topTokens[k]!]);
      const hits = topTokens.map((t) => t === s.eosTokenId || curLen + 1 >= s.maxLength);

      // Running beams for the next step: the best nb of the candidates that do not finish.
      const runningChoice = topScores.map((v, k) => (hits[k] ? f32(v + NEG) : v));
      const nextRunning = topK(runningChoice, nb);

      // Finished hypotheses: finishing candidates among the first nb, length-penalised.
      const norm = (curLen + 1 - promptLen) ** s.lengthPenalty;
      const full = st.finishedFlags.every(Boolean) && s.earlyStopping === true;
      const penalised = topScores.map((v, k) => {
        let x = f32(v / norm);
        if (full) x = f32(x + NEG);
        if (!st.improvable) x = f32(x + NEG);
        if (!(hits[k] && k < nb)) x = f32(x + NEG);
        return x;
      });
      const merged = [...st.finishedScores, ...penalised];
      const keep = topK(merged, nb);
      const fin = keep.map((i) => (i < nb ? st.finished[i]! : topSeqs[i - nb]!));
      const finFlags = keep.map((i) => (i < nb ? st.finishedFlags[i]! : hits[i - nb]! && i - nb < nb));
      st.finished = fin;
      st.finishedScores = keep.map((i) => merged[i]!);
      st.finishedFlags = finFlags;

      st.running = nextRunning.map((k) => topSeqs[k]!);
      st.runningScores = nextRunning.map((k) => runningChoice[k]!);

      // The early-stopping heuristic, at the new length.
      const bestLen = s.earlyStopping === 'never' && s.lengthPenalty > 0 ? s.maxLength - promptLen : curLen + 1 - promptLen;
      const bestPossible = f32(st.runningScores[0]! / bestLen ** s.lengthPenalty);
      const worst = Math.min(...st.finishedScores);
      st.improvable = st.improvable && st.finishedFlags.some((flag) => bestPossible > (flag ? worst : NEG));
      st.done = !st.improvable || (s.earlyStopping === true && st.finishedFlags.every(Boolean)) || curLen + 1 >= s.maxLength;
      if (st.done) return;
      stillActive.push(image);
      nextRunning.forEach((k, j) => {
        nextRows.push(a * nb + topBeams[k]!);
        nextTokens.push(st.running[j]![curLen]!);
      });
    });
    curLen++;
    if (stillActive.length === 0) break;
    past = model.selectRows(out.past, nextRows);
    active = stillActive;
    input = BigInt64Array.from(nextTokens, (t) => BigInt(t));
    seqLen = 1;
  }
  return states.map((st) => ({ tokens: st.finished[0]!, score: st.finishedScores[0]! }));
}

// Public Node API of img2prompt. Data flows one way: decode → preprocess → encode → rank → compose → embed → write.
export { Img2PromptError } from './util/errors.js';
export { Session, tensor, availableProviders, ortVersion } from './runtime/session.js';
export type { Tensor, TensorInfo, TensorType, TensorData, SessionOptions, RunOptions, ExecutionProvider } from './runtime/session.js';
export { modelHome, modelDir, listModels, verifyModel } from './models/cache.js';
export { pullModel } from './models/pull.js';
export type { TextEmbedder } from './text/embedder.js';
export { MiniLMEmbedder } from './text/minilm.js';
export { MiniLMTokenizer } from './text/minilm-tokenizer.js';
export { openMiniLMEmbedder } from './submission/default-embedder.js';
export { readPromptsCsv, writePromptsCsv } from './submission/prompts-csv.js';
export type { PromptRow } from './submission/prompts-csv.js';
export { embedPrompts } from './submission/embed-prompts.js';
export { writeSubmission, readSubmission } from './submission/submission-csv.js';
export { validateSubmission } from './submission/validate.js';
export type { ValidationReport } from './submission/validate.js';
export { score } from './submission/score.js';
export type { ScoreResult, ImageScore } from './submission/score.js';

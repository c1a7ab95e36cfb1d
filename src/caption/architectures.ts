import { Img2PromptError } from '../util/errors.js';
import { OPENAI_CLIP_MEAN, OPENAI_CLIP_STD } from '../clip/config.js';
import { validateCaptionConfig, type CaptionConfig, type TextDecoderConfig, type VitConfig } from './config.js';

/**
 * The captioner architectures known by name (for `models random`): the sizes of the published
 * checkpoints (Salesforce/blip-image-captioning-base and -large, microsoft/git-large-coco) and two
 * tiny ones with the real vocabularies, preprocessing and token conventions, small enough for tests.
 */

const BERT_VOCAB = 30522;
/** bert-base-uncased plus BLIP's [DEC] and [ENC]. */
const BLIP_VOCAB = BERT_VOCAB + 2;

const blipText = (t: Partial<TextDecoderConfig>): TextDecoderConfig => ({
  vocabSize: BLIP_VOCAB, width: 768, layers: 12, heads: 12, intermediate: 3072, lnEps: 1e-12, maxPositions: 512, ...t,
});
const blipVision = (v: Partial<VitConfig>): VitConfig => ({
  imageSize: 384, patchSize: 16, width: 768, layers: 12, heads: 12, intermediate: 3072, act: 'gelu', lnEps: 1e-5, ...v,
});

function blip(vision: VitConfig, text: TextDecoderConfig): CaptionConfig {
  return {
    arch: 'blip',
    vision,
    text,
    tokens: { bos: BERT_VOCAB, eos: 102, pad: 0 },
    image: { size: vision.imageSize, processor: 'hf-pil-resize', mean: [...OPENAI_CLIP_MEAN], std: [...OPENAI_CLIP_STD] },
  };
}

function git(vision: VitConfig, text: TextDecoderConfig): CaptionConfig {
  return {
    arch: 'git',
    vision,
    text,
    projectionLnEps: vision.lnEps,
    tokens: { bos: 101, eos: 102, pad: 0 },
    image: { size: vision.imageSize, processor: 'hf-pil', mean: [...OPENAI_CLIP_MEAN], std: [...OPENAI_CLIP_STD] },
  };
}

const ARCHS: Record<string, () => CaptionConfig> = {
  'blip-tiny': () =>
    blip(blipVision({ patchSize: 32, width: 64, layers: 2, heads: 4, intermediate: 128 }), blipText({ width: 64, layers: 2, heads: 4, intermediate: 128 })),
  'blip-base': () => blip(blipVision({}), blipText({})),
  'blip-large': () => blip(blipVision({ width: 1024, layers: 24, heads: 16, intermediate: 4096 }), blipText({})),
  'git-tiny': () =>
    git(
      { imageSize: 224, patchSize: 32, width: 64, layers: 2, heads: 4, intermediate: 128, act: 'quick_gelu', lnEps: 1e-5 },
      { vocabSize: BERT_VOCAB, width: 64, layers: 2, heads: 4, intermediate: 128, lnEps: 1e-12, maxPositions: 1024 },
    ),
  'git-large': () =>
    git(
      { imageSize: 224, patchSize: 14, width: 1024, layers: 24, heads: 16, intermediate: 4096, act: 'quick_gelu', lnEps: 1e-5 },
      { vocabSize: BERT_VOCAB, width: 768, layers: 6, heads: 12, intermediate: 3072, lnEps: 1e-12, maxPositions: 1024 },
    ),
};

export const CAPTION_ARCHITECTURE_NAMES = Object.keys(ARCHS);

export function isCaptionArchitecture(name: string): boolean {
  return Object.hasOwn(ARCHS, name);
}

export function captionArchitectureConfig(name: string): CaptionConfig {
  const make = ARCHS[name];
  if (!make) throw new Img2PromptError(undefined, `unknown captioner architecture "${name}" (known: ${CAPTION_ARCHITECTURE_NAMES.join(', ')})`);
  return validateCaptionConfig(make(), `<${name}>`);
}

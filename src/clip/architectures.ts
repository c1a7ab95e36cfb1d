import { Img2PromptError } from '../util/errors.js';
import { parseOpenClipConfig, tinyClipConfig, type ClipConfig } from './config.js';

/**
 * The CLIP architectures the engine knows by name, in open_clip's config terms. Sizes are those of the
 * published models; the activation is the one their best-known weights were trained with (OpenAI's
 * B/32 and L/14: QuickGELU; LAION's H/14: GELU).
 */
const OPEN_CLIP_ARCHS: Record<string, { json: Record<string, unknown>; quickGelu: boolean }> = {
  'ViT-B-32': {
    json: {
      embed_dim: 512,
      vision_cfg: { image_size: 224, layers: 12, width: 768, patch_size: 32 },
      text_cfg: { context_length: 77, vocab_size: 49408, width: 512, heads: 8, layers: 12 },
    },
    quickGelu: true,
  },
  'ViT-L-14': {
    json: {
      embed_dim: 768,
      vision_cfg: { image_size: 224, layers: 24, width: 1024, patch_size: 14 },
      text_cfg: { context_length: 77, vocab_size: 49408, width: 768, heads: 12, layers: 12 },
    },
    quickGelu: true,
  },
  'ViT-H-14': {
    json: {
      embed_dim: 1024,
      vision_cfg: { image_size: 224, layers: 32, width: 1280, head_width: 80, patch_size: 14 },
      text_cfg: { context_length: 77, vocab_size: 49408, width: 1024, heads: 16, layers: 24 },
    },
    quickGelu: false,
  },
};

export const ARCHITECTURE_NAMES = ['tiny', ...Object.keys(OPEN_CLIP_ARCHS)] as const;

export function architectureConfig(name: string): ClipConfig {
  if (name === 'tiny') return tinyClipConfig('quick_gelu');
  const arch = OPEN_CLIP_ARCHS[name];
  if (!arch) throw new Img2PromptError(undefined, `unknown architecture "${name}" (known: ${ARCHITECTURE_NAMES.join(', ')})`);
  return parseOpenClipConfig(arch.json, `<${name}>`, { quickGelu: arch.quickGelu });
}

// CLIP image preprocessing (shortest side to N, N×N centre crop, ToTensor, Normalize) from a decoded RGB8
// or RGBA8 buffer straight into one slot of a float32 NCHW batch, following the rules of the reference
// pipeline the checkpoint was trained and published with (see ClipRules).
#pragma once
#include <napi.h>

#include <cstdint>

namespace img2prompt {

// Whose centre crop: torchvision's CenterCrop rounds the offset half to even (open_clip), transformers'
// center_crop truncates it (one column further left when (len - N) / 2 ends in .5 on an odd integer part);
// none: no crop, the whole image is resized to N×N (BlipImageProcessor).
enum class CropRounding { kHalfToEven, kFloor, kNone };

struct ClipGeometry {
  int64_t resized_width;   // size after "shortest side to N"
  int64_t resized_height;
  int64_t left;            // top-left corner of the N×N centre crop inside the resized image
  int64_t top;
};

// Long side = int(N * long / short) in both references; crop offset (len - N) / 2 rounded by `crop`.
ClipGeometry ComputeClipGeometry(int64_t width, int64_t height, int64_t size, CropRounding crop);

// Which pass Pillow runs first; it decides where the 8-bit rounding between the passes happens, so it
// moves a few pixels by a level or so. Pillow <= 12.1 (every release CLIP was trained with) always
// starts horizontal; 12.2 starts vertical for images over 100x taller than wide that lose height;
// 13 starts vertical whenever the height loses more than twice as many pixels as the width.
enum class PassOrder { kPillow13, kPillow12_2, kPillow12_1 };

bool PillowRunsHorizontalFirst(int64_t width, int64_t height, int64_t new_width, int64_t new_height, PassOrder order);

enum class Resampler {
  kPillowBicubic,  // PIL Image.resize(BICUBIC), passes in `order`
  kPillowNearest,  // what PIL does instead for palette and 1-bit images
  kTorchBicubic,   // torch's antialiased uint8 bicubic, horizontal pass first
};

// What happens to a fourth (alpha) channel of the input. Without one, all three read RGB as is.
enum class AlphaRule {
  kDrop,           // ignored (PIL convert('RGB') after the resize)
  kOntoWhite,      // composited onto white before resizing (transformers' convert_to_rgb)
  kPremultiplied,  // resized premultiplied and divided back, then dropped (PIL resizing an RGBA image)
};

struct ClipRules {
  Resampler resampler = Resampler::kPillowBicubic;
  PassOrder order = PassOrder::kPillow13;
  CropRounding crop = CropRounding::kHalfToEven;
  AlphaRule alpha = AlphaRule::kDrop;
};

// Writes the normalised N×N crop of `pixels` (HWC, width×height×channels, channels 3 or 4) to `out`
// (3 planes of N×N floats). `lut` holds, per channel, the normalised value of each 8-bit level.
void ClipPreprocessInto(const uint8_t* pixels, int64_t channels, int64_t width, int64_t height, int64_t size,
                        const float lut[3][256], float* out, const ClipRules& rules);

// clipPreprocess(pixels, width, height, size, mean, std, out, slot, rules?) → Promise<void>, run on the
// libuv pool; clipGeometry(width, height, size, crop?) → {resizedWidth, resizedHeight, left, top}.
void RegisterClipPreprocess(Napi::Env env, Napi::Object exports);

}  // namespace img2prompt

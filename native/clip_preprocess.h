// CLIP image preprocessing (torchvision Resize(N, BICUBIC) on a PIL image, CenterCrop(N), ToTensor,
// Normalize) from a decoded RGB8 buffer straight into one slot of a float32 NCHW batch.
#pragma once
#include <napi.h>

#include <cstdint>

namespace img2prompt {

struct ClipGeometry {
  int64_t resized_width;   // size after "shortest side to N"
  int64_t resized_height;
  int64_t left;            // top-left corner of the N×N centre crop inside the resized image
  int64_t top;
};

// torchvision's rules: long side = int(N * long / short), crop offset = round((len - N) / 2) (half to even).
ClipGeometry ComputeClipGeometry(int64_t width, int64_t height, int64_t size);

// Which pass Pillow runs first; it decides where the 8-bit rounding between the passes happens, so it
// moves a few pixels by a level or so. Pillow <= 12.1 (every release CLIP was trained with) always
// starts horizontal; 12.2 starts vertical for images over 100x taller than wide that lose height;
// 13 starts vertical whenever the height loses more than twice as many pixels as the width.
enum class PassOrder { kPillow13, kPillow12_2, kPillow12_1 };

bool PillowRunsHorizontalFirst(int64_t width, int64_t height, int64_t new_width, int64_t new_height, PassOrder order);

// Writes the normalised N×N crop of `rgb` (HWC, width×height×3) to `out` (3 planes of N×N floats).
// `lut` holds, per channel, the normalised value of each 8-bit level. Resampling follows PIL's
// Image.resize(BICUBIC) bit for bit (fixed-point taps, 8-bit result after each pass).
void ClipPreprocessInto(const uint8_t* rgb, int64_t width, int64_t height, int64_t size, const float lut[3][256],
                        float* out, PassOrder order);

// clipPreprocess(rgb, width, height, size, mean, std, out, slot, passOrder?) → Promise<void>, run on
// the libuv pool; clipGeometry(width, height, size) → {resizedWidth, resizedHeight, left, top}.
void RegisterClipPreprocess(Napi::Env env, Napi::Object exports);

}  // namespace img2prompt

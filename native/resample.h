// Separable 8-bit image resampling that reproduces, bit for bit, the two resizers CLIP pipelines use:
//   Pillow's Image.resize (Resample.c): Keys' bicubic (a = -0.5) stretched by the downscale factor,
//     taps normalised to sum 1 and turned into 22-bit fixed point, an 8-bit result after each pass;
//     and its nearest-neighbour resize, which Pillow uses for palette and 1-bit images whatever the filter.
//   torch's antialiased uint8 interpolate (aten UpSampleKernel.cpp, what torchvision's v2 resize runs on
//     a uint8 tensor, hence transformers 5's CLIPImageProcessor): the same taps from its own expression of
//     the kernel, in int16 fixed point at the largest precision (<= 22 bits) that keeps every weight of
//     the axis under 2^15, horizontal pass first.
// Only a window of outputs is ever computed: each output depends on its own taps alone, so a window
// equals resizing everything and cropping afterwards.
#pragma once

#include <cstdint>
#include <vector>

namespace img2prompt {

enum class BicubicKernel { kPillow, kTorch };

// Taps of the outputs [out_lo, out_hi) of a 1-D resample from in_size to out_size samples.
struct Taps {
  int64_t ksize = 0;
  int precision = 0;            // fraction bits of `weight`
  std::vector<int64_t> first;   // first input sample of each output
  std::vector<int64_t> count;   // number of input samples it reads
  std::vector<int32_t> weight;  // ksize fixed-point weights per output
};

Taps BicubicTaps(BicubicKernel kernel, int64_t in_size, int64_t out_size, int64_t out_lo, int64_t out_hi);

// Input sample of each output in [out_lo, out_hi) for Pillow's nearest-neighbour resize.
std::vector<int64_t> NearestSources(int64_t in_size, int64_t out_size, int64_t out_lo, int64_t out_hi);

// Span [lo, hi) of input samples the taps read.
void TapSpan(const Taps& taps, int64_t& lo, int64_t& hi);

// How a pixel is read before resampling. The source may hold RGB or RGBA; what the passes write is RGB,
// or premultiplied RGBA while an alpha channel is being resampled along.
enum class PixelRead {
  kRgb,           // the first three channels (a fourth is ignored)
  kRgba,          // all four channels as stored (a premultiplied buffer between passes)
  kOntoWhite,     // RGBA composited onto opaque white, as PIL.Image.alpha_composite does → RGB
  kPremultiply,   // RGBA → premultiplied RGBA, as PIL's convert('RGBa') does
};

// Channels a read produces.
inline int ReadChannels(PixelRead read) { return read == PixelRead::kRgba || read == PixelRead::kPremultiply ? 4 : 3; }

// Pixels of a (partial) image addressed in source coordinates: (x, y) lives at
// data + (y - y0) * stride + (x - x0) * channels. Lets each pass read only the window it needs.
struct View {
  const uint8_t* data;
  int64_t stride;
  int64_t channels;
  int64_t x0, y0;
  const uint8_t* At(int64_t x, int64_t y) const { return data + (y - y0) * stride + (x - x0) * channels; }
};

// Resamples rows [row_lo, row_hi) of `in` along x into output columns col_lo..col_lo+n, kept in `out`.
View HorizontalPass(const View& in, PixelRead read, const Taps& taps, int64_t col_lo, int64_t n, int64_t row_lo,
                    int64_t row_hi, std::vector<uint8_t>& out);

// Resamples columns [col_lo, col_hi) of `in` along y into output rows row_lo..row_lo+n, kept in `out`.
View VerticalPass(const View& in, PixelRead read, const Taps& taps, int64_t row_lo, int64_t n, int64_t col_lo,
                  int64_t col_hi, std::vector<uint8_t>& out);

// Reads one pixel of `in` at (x, y) as RGB: through `read` (kRgb or kOntoWhite), or for a premultiplied
// RGBA pixel (kRgba) divided back by its alpha as PIL's convert('RGBA') from 'RGBa' does.
void ReadRgb(const View& in, PixelRead read, int64_t x, int64_t y, uint8_t rgb[3]);

}  // namespace img2prompt

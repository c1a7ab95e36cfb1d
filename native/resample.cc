#include "resample.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

namespace img2prompt {

namespace {

constexpr int kPillowPrecisionBits = 32 - 8 - 2;  // Pillow's PRECISION_BITS for 8-bit images

// Keys' cubic with a = -0.5, as Pillow writes it (Resample.c bicubic_filter).
double PillowBicubic(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// The same kernel as torch writes it (cubic_convolution1/2): the outer lobe rounds differently.
double TorchBicubic(double x) {
  constexpr double a = -0.5;
  x = std::abs(x);
  if (x < 1.0) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2.0) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0.0;
}

struct Axis {
  double (*kernel)(double);
  int64_t in_size;
  double scale;
  double support;
  double inv_filterscale;
  int64_t ksize;
};

Axis AxisOf(BicubicKernel kernel, int64_t in_size, int64_t out_size) {
  Axis a;
  a.kernel = kernel == BicubicKernel::kPillow ? PillowBicubic : TorchBicubic;
  a.in_size = in_size;
  a.scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filterscale = a.scale < 1.0 ? 1.0 : a.scale;  // widen the kernel only when shrinking (antialias)
  a.support = 2.0 * filterscale;
  a.inv_filterscale = 1.0 / filterscale;
  a.ksize = static_cast<int64_t>(std::ceil(a.support)) * 2 + 1;
  return a;
}

// Normalised float weights of output xx into w[0..count); returns count, sets `first`. Both references
// compute them the same way (C casts truncate toward zero before the clamp).
int64_t OutputWeights(const Axis& a, int64_t xx, double* w, int64_t& first) {
  const double center = (xx + 0.5) * a.scale;
  int64_t xmin = static_cast<int64_t>(center - a.support + 0.5);
  if (xmin < 0) xmin = 0;
  int64_t xmax = static_cast<int64_t>(center + a.support + 0.5);
  if (xmax > a.in_size) xmax = a.in_size;
  const int64_t count = std::clamp<int64_t>(xmax - xmin, 0, a.ksize);
  double total = 0.0;
  for (int64_t x = 0; x < count; ++x) {
    w[x] = a.kernel((static_cast<double>(x + xmin) - center + 0.5) * a.inv_filterscale);
    total += w[x];
  }
  if (total != 0.0) {
    for (int64_t x = 0; x < count; ++x) w[x] /= total;
  }
  first = xmin;
  return count;
}

// torch's precision: the largest p < 22 at which the axis' largest weight, in p + 1 bits, still fits int16.
int TorchPrecision(const Axis& a, int64_t out_size) {
  std::vector<double> w(a.ksize);
  double w_max = 0.0;
  int64_t first;
  for (int64_t xx = 0; xx < out_size; ++xx) {
    const int64_t count = OutputWeights(a, xx, w.data(), first);
    for (int64_t x = 0; x < count; ++x) w_max = std::max(w_max, w[x]);
  }
  int p = 0;
  for (; p < 22; ++p) {
    if (static_cast<int>(0.5 + w_max * static_cast<double>(1 << (p + 1))) >= (1 << 15)) break;
  }
  return p;
}

inline uint8_t Clip8(int64_t acc, int precision) {
  if (acc <= 0) return 0;
  if (acc >= (int64_t{255} << precision)) return 255;
  return static_cast<uint8_t>(acc >> precision);
}

// PIL's ((a * b + 128) + ((a * b + 128) >> 8)) >> 8: a * b / 255, rounded.
inline uint32_t MulDiv255(uint32_t a, uint32_t b) {
  const uint32_t t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

// PIL.Image.alpha_composite of (v, alpha) over opaque white, 7 extra bits of precision as in AlphaComposite.c.
inline uint32_t OverWhite(uint32_t v, uint32_t alpha) {
  const uint32_t t = (v * alpha + 255 * (255 - alpha)) * 128 + (0x80 << 7);
  return ((((t >> 8) + t) >> 8) >> 7);
}

struct ReadRgbChannels {
  static constexpr int kOut = 3;
  static void Read(const uint8_t* p, uint32_t* v) {
    v[0] = p[0];
    v[1] = p[1];
    v[2] = p[2];
  }
};

struct ReadRgbaChannels {
  static constexpr int kOut = 4;
  static void Read(const uint8_t* p, uint32_t* v) {
    v[0] = p[0];
    v[1] = p[1];
    v[2] = p[2];
    v[3] = p[3];
  }
};

struct ReadOntoWhite {
  static constexpr int kOut = 3;
  static void Read(const uint8_t* p, uint32_t* v) {
    v[0] = OverWhite(p[0], p[3]);
    v[1] = OverWhite(p[1], p[3]);
    v[2] = OverWhite(p[2], p[3]);
  }
};

struct ReadPremultiplied {
  static constexpr int kOut = 4;
  static void Read(const uint8_t* p, uint32_t* v) {
    v[0] = MulDiv255(p[0], p[3]);
    v[1] = MulDiv255(p[1], p[3]);
    v[2] = MulDiv255(p[2], p[3]);
    v[3] = p[3];
  }
};

// kStride: bytes per input pixel, a compile-time constant so the tap loop walks the row like a plain array.
template <class R, int kStride>
View HorizontalPassT(const View& in, const Taps& taps, int64_t col_lo, int64_t n, int64_t row_lo, int64_t row_hi,
                     std::vector<uint8_t>& out) {
  constexpr int K = R::kOut;
  const int64_t stride = n * K;
  const int64_t half = int64_t{1} << (taps.precision - 1);  // rounds the fixed-point sum to nearest
  out.resize((row_hi - row_lo) * stride);
  for (int64_t r = row_lo; r < row_hi; ++r) {
    uint8_t* dst = &out[(r - row_lo) * stride];
    for (int64_t j = 0; j < n; ++j) {
      const int32_t* k = &taps.weight[j * taps.ksize];
      const uint8_t* p = in.At(taps.first[j], r);
      int64_t s[K];
      uint32_t v[K];
      for (int c = 0; c < K; ++c) s[c] = half;
      const int64_t count = taps.count[j];
      for (int64_t t = 0; t < count; ++t, p += kStride) {
        R::Read(p, v);
        const int64_t kt = k[t];
        for (int c = 0; c < K; ++c) s[c] += int64_t{v[c]} * kt;
      }
      for (int c = 0; c < K; ++c) dst[j * K + c] = Clip8(s[c], taps.precision);
    }
  }
  return View{out.data(), stride, K, col_lo, row_lo};
}

template <class R>
View VerticalPassT(const View& in, const Taps& taps, int64_t row_lo, int64_t n, int64_t col_lo, int64_t col_hi,
                   std::vector<uint8_t>& out) {
  constexpr int K = R::kOut;
  const int64_t cols = col_hi - col_lo;
  const int64_t stride = cols * K;
  const int64_t half = int64_t{1} << (taps.precision - 1);
  // Rows whose pixels are read as stored are summed as flat byte runs, which the compiler vectorises.
  const bool as_stored = in.channels == K && (std::is_same_v<R, ReadRgbChannels> || std::is_same_v<R, ReadRgbaChannels>);
  out.resize(n * stride);
  std::vector<int64_t> acc(stride);
  for (int64_t y = 0; y < n; ++y) {
    std::fill(acc.begin(), acc.end(), half);
    const int32_t* k = &taps.weight[y * taps.ksize];
    for (int64_t t = 0; t < taps.count[y]; ++t) {
      const uint8_t* p = in.At(col_lo, taps.first[y] + t);
      const int64_t kt = k[t];
      if (as_stored) {
        for (int64_t i = 0; i < stride; ++i) acc[i] += int64_t{p[i]} * kt;
      } else {
        uint32_t v[K];
        for (int64_t x = 0; x < cols; ++x, p += in.channels) {
          R::Read(p, v);
          for (int c = 0; c < K; ++c) acc[x * K + c] += int64_t{v[c]} * kt;
        }
      }
    }
    uint8_t* dst = &out[y * stride];
    if (taps.precision == kPillowPrecisionBits) {
      // A constant shift lets the compiler vectorise the row (Pillow's case; torch's varies per axis).
      for (int64_t i = 0; i < stride; ++i) dst[i] = Clip8(acc[i], kPillowPrecisionBits);
    } else {
      for (int64_t i = 0; i < stride; ++i) dst[i] = Clip8(acc[i], taps.precision);
    }
  }
  return View{out.data(), stride, K, col_lo, row_lo};
}

}  // namespace

Taps BicubicTaps(BicubicKernel kernel, int64_t in_size, int64_t out_size, int64_t out_lo, int64_t out_hi) {
  const Axis axis = AxisOf(kernel, in_size, out_size);
  Taps taps;
  taps.ksize = axis.ksize;
  taps.precision = kernel == BicubicKernel::kPillow ? kPillowPrecisionBits : TorchPrecision(axis, out_size);
  const int64_t outputs = out_hi - out_lo;
  taps.first.resize(outputs);
  taps.count.resize(outputs);
  taps.weight.assign(outputs * taps.ksize, 0);
  std::vector<double> w(taps.ksize);
  const double one = static_cast<double>(int64_t{1} << taps.precision);
  for (int64_t xx = out_lo; xx < out_hi; ++xx) {
    int64_t first;
    const int64_t count = OutputWeights(axis, xx, w.data(), first);
    int32_t* k = &taps.weight[(xx - out_lo) * taps.ksize];
    for (int64_t x = 0; x < count; ++x) {
      const double scaled = w[x] * one;
      k[x] = static_cast<int32_t>(w[x] < 0 ? -0.5 + scaled : 0.5 + scaled);  // round half away from zero
    }
    taps.first[xx - out_lo] = first;
    taps.count[xx - out_lo] = count;
  }
  return taps;
}

std::vector<int64_t> NearestSources(int64_t in_size, int64_t out_size, int64_t out_lo, int64_t out_hi) {
  // Geometry.c ImagingScaleAffine: the source position starts at scale / 2 and is advanced by adding
  // the scale once per output, so the float rounding of that running sum decides ties; it is replayed
  // from output 0 for the same bits.
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  std::vector<int64_t> sources(out_hi - out_lo);
  double pos = scale * 0.5;
  for (int64_t x = 0; x < out_hi; ++x, pos += scale) {
    if (x < out_lo) continue;
    // Pillow leaves a pixel that maps outside the source unwritten; the running sum never gets there.
    sources[x - out_lo] = std::clamp<int64_t>(static_cast<int64_t>(pos), 0, in_size - 1);
  }
  return sources;
}

void TapSpan(const Taps& taps, int64_t& lo, int64_t& hi) {
  lo = taps.first[0];
  hi = 0;
  for (size_t i = 0; i < taps.first.size(); ++i) {
    lo = std::min(lo, taps.first[i]);
    hi = std::max(hi, taps.first[i] + taps.count[i]);
  }
}

View HorizontalPass(const View& in, PixelRead read, const Taps& taps, int64_t col_lo, int64_t n, int64_t row_lo,
                    int64_t row_hi, std::vector<uint8_t>& out) {
  switch (read) {
    case PixelRead::kRgba:
      return HorizontalPassT<ReadRgbaChannels, 4>(in, taps, col_lo, n, row_lo, row_hi, out);
    case PixelRead::kOntoWhite:
      return HorizontalPassT<ReadOntoWhite, 4>(in, taps, col_lo, n, row_lo, row_hi, out);
    case PixelRead::kPremultiply:
      return HorizontalPassT<ReadPremultiplied, 4>(in, taps, col_lo, n, row_lo, row_hi, out);
    case PixelRead::kRgb:
    default:
      return in.channels == 4 ? HorizontalPassT<ReadRgbChannels, 4>(in, taps, col_lo, n, row_lo, row_hi, out)
                              : HorizontalPassT<ReadRgbChannels, 3>(in, taps, col_lo, n, row_lo, row_hi, out);
  }
}

View VerticalPass(const View& in, PixelRead read, const Taps& taps, int64_t row_lo, int64_t n, int64_t col_lo,
                  int64_t col_hi, std::vector<uint8_t>& out) {
  switch (read) {
    case PixelRead::kRgba:
      return VerticalPassT<ReadRgbaChannels>(in, taps, row_lo, n, col_lo, col_hi, out);
    case PixelRead::kOntoWhite:
      return VerticalPassT<ReadOntoWhite>(in, taps, row_lo, n, col_lo, col_hi, out);
    case PixelRead::kPremultiply:
      return VerticalPassT<ReadPremultiplied>(in, taps, row_lo, n, col_lo, col_hi, out);
    case PixelRead::kRgb:
    default:
      return VerticalPassT<ReadRgbChannels>(in, taps, row_lo, n, col_lo, col_hi, out);
  }
}

void ReadRgb(const View& in, PixelRead read, int64_t x, int64_t y, uint8_t rgb[3]) {
  const uint8_t* p = in.At(x, y);
  uint32_t v[4];
  switch (read) {
    case PixelRead::kOntoWhite:
      ReadOntoWhite::Read(p, v);
      break;
    case PixelRead::kRgba: {
      // PIL's 'RGBa' → 'RGBA': divide by alpha, except where alpha is 0 or 255.
      const uint32_t alpha = p[3];
      for (int c = 0; c < 3; ++c) v[c] = alpha == 0 || alpha == 255 ? p[c] : std::min<uint32_t>(255, 255 * p[c] / alpha);
      break;
    }
    case PixelRead::kRgb:
    case PixelRead::kPremultiply:
    default:
      ReadRgbChannels::Read(p, v);
      break;
  }
  for (int c = 0; c < 3; ++c) rgb[c] = static_cast<uint8_t>(v[c]);
}

}  // namespace img2prompt

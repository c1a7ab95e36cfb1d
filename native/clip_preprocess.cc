// CLIP preprocessing as open_clip / HF CLIPImageProcessor do it on a PIL image:
//   Resize(N, BICUBIC) → CenterCrop(N) → ToTensor (u8 / 255) → Normalize((x - mean) / std)
// The resampler reproduces Pillow's Resample.c: a separable convolution (one pass per axis) whose
// bicubic kernel (a = -0.5) is stretched by the downscale factor, taps normalised to sum 1 and turned
// into 22-bit fixed point, each pass rounded and clamped to 8 bits, the passes in the order the chosen
// Pillow release runs them. CLIP was trained on Pillow's pixels, and matching them bit for bit removes
// one source of drift from the embeddings. Only the window the centre crop keeps is ever computed.
#include "clip_preprocess.h"

#include <algorithm>
#include <cmath>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

namespace img2prompt {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's PRECISION_BITS for 8-bit images
constexpr int64_t kMaxSide = int64_t{1} << 24;
constexpr int64_t kMaxSize = 8192;

double BicubicKernel(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// Taps of the outputs [out_lo, out_hi) of a 1-D resample from in_size to out_size samples.
// Only the window the centre crop keeps is computed: each output depends on its own taps alone, so
// the result is the same as resizing everything and cropping afterwards, at a fraction of the work.
struct Taps {
  int64_t ksize = 0;
  std::vector<int64_t> first;   // first input sample of each output
  std::vector<int64_t> count;   // number of input samples it reads
  std::vector<int32_t> weight;  // ksize fixed-point weights per output
};

Taps BicubicTaps(int64_t in_size, int64_t out_size, int64_t out_lo, int64_t out_hi) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filterscale = scale < 1.0 ? 1.0 : scale;  // widen the kernel only when shrinking (antialias)
  const double support = 2.0 * filterscale;
  const double inv_filterscale = 1.0 / filterscale;
  Taps taps;
  taps.ksize = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  const int64_t outputs = out_hi - out_lo;
  taps.first.resize(outputs);
  taps.count.resize(outputs);
  taps.weight.assign(outputs * taps.ksize, 0);
  std::vector<double> w(taps.ksize);
  for (int64_t xx = out_lo; xx < out_hi; ++xx) {
    const double center = (xx + 0.5) * scale;
    // C casts truncate toward zero; Pillow relies on that before clamping.
    int64_t xmin = static_cast<int64_t>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int64_t xmax = static_cast<int64_t>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double total = 0.0;
    for (int64_t x = 0; x < xmax; ++x) {
      w[x] = BicubicKernel((static_cast<double>(x + xmin) - center + 0.5) * inv_filterscale);
      total += w[x];
    }
    int32_t* k = &taps.weight[(xx - out_lo) * taps.ksize];
    for (int64_t x = 0; x < xmax; ++x) {
      const double normalised = total != 0.0 ? w[x] / total : w[x];
      const double scaled = normalised * (1 << kPrecisionBits);
      k[x] = static_cast<int32_t>(normalised < 0 ? -0.5 + scaled : 0.5 + scaled);  // round half away from zero
    }
    taps.first[xx - out_lo] = xmin;
    taps.count[xx - out_lo] = xmax;
  }
  return taps;
}

inline uint8_t Clip8(int64_t acc) {
  if (acc <= 0) return 0;
  if (acc >= (int64_t{255} << kPrecisionBits)) return 255;
  return static_cast<uint8_t>(acc >> kPrecisionBits);
}

constexpr int64_t kHalf = int64_t{1} << (kPrecisionBits - 1);  // rounds the fixed-point sum to nearest

// Python's round() of d / 2 (half to even), d >= 0: torchvision's crop offset.
int64_t HalfToEven(int64_t d) {
  int64_t q = d / 2;
  if ((d & 1) && (q & 1)) ++q;
  return q;
}

}  // namespace

ClipGeometry ComputeClipGeometry(int64_t width, int64_t height, int64_t size) {
  ClipGeometry g{width, height, 0, 0};
  const int64_t short_side = std::min(width, height);
  const int64_t long_side = std::max(width, height);
  if (short_side != size) {
    // Python's int(size * long / short): an exact integer product, one correctly rounded division.
    const auto new_long =
        static_cast<int64_t>(static_cast<double>(size * long_side) / static_cast<double>(short_side));
    if (width <= height) {
      g.resized_width = size;
      g.resized_height = new_long;
    } else {
      g.resized_width = new_long;
      g.resized_height = size;
    }
  }
  g.left = HalfToEven(g.resized_width - size);
  g.top = HalfToEven(g.resized_height - size);
  return g;
}

namespace {

// Pixels of a (partial) RGB8 image addressed in source coordinates: (x, y) lives at
// data + (y - y0) * stride + (x - x0) * 3. Lets each pass read only the window the crop needs.
struct View {
  const uint8_t* data;
  int64_t stride;
  int64_t x0, y0;
  const uint8_t* At(int64_t x, int64_t y) const { return data + (y - y0) * stride + (x - x0) * 3; }
};

// Resamples rows [row_lo, row_hi) of `in` along x into output columns col_lo..col_lo+n (`out` holds them).
View HorizontalPass(const View& in, const Taps& taps, int64_t col_lo, int64_t n, int64_t row_lo, int64_t row_hi,
                    std::vector<uint8_t>& out) {
  const int64_t stride = n * 3;
  out.resize((row_hi - row_lo) * stride);
  for (int64_t r = row_lo; r < row_hi; ++r) {
    uint8_t* dst = &out[(r - row_lo) * stride];
    for (int64_t j = 0; j < n; ++j) {
      const int32_t* k = &taps.weight[j * taps.ksize];
      const uint8_t* p = in.At(taps.first[j], r);
      int64_t s0 = kHalf, s1 = kHalf, s2 = kHalf;
      for (int64_t t = 0; t < taps.count[j]; ++t, p += 3) {
        s0 += int64_t{p[0]} * k[t];
        s1 += int64_t{p[1]} * k[t];
        s2 += int64_t{p[2]} * k[t];
      }
      dst[j * 3 + 0] = Clip8(s0);
      dst[j * 3 + 1] = Clip8(s1);
      dst[j * 3 + 2] = Clip8(s2);
    }
  }
  return View{out.data(), stride, col_lo, row_lo};
}

// Resamples columns [col_lo, col_hi) of `in` along y into output rows row_lo..row_lo+n (`out` holds them).
View VerticalPass(const View& in, const Taps& taps, int64_t row_lo, int64_t n, int64_t col_lo, int64_t col_hi,
                  std::vector<uint8_t>& out) {
  const int64_t stride = (col_hi - col_lo) * 3;
  out.resize(n * stride);
  std::vector<int64_t> acc(stride);
  for (int64_t y = 0; y < n; ++y) {
    std::fill(acc.begin(), acc.end(), kHalf);
    const int32_t* k = &taps.weight[y * taps.ksize];
    for (int64_t t = 0; t < taps.count[y]; ++t) {
      const uint8_t* p = in.At(col_lo, taps.first[y] + t);
      const int64_t kt = k[t];
      for (int64_t i = 0; i < stride; ++i) acc[i] += int64_t{p[i]} * kt;
    }
    uint8_t* dst = &out[y * stride];
    for (int64_t i = 0; i < stride; ++i) dst[i] = Clip8(acc[i]);
  }
  return View{out.data(), stride, col_lo, row_lo};
}

// Span of input samples the taps read.
void TapSpan(const Taps& taps, int64_t& lo, int64_t& hi) {
  lo = taps.first[0];
  hi = 0;
  for (size_t i = 0; i < taps.first.size(); ++i) {
    lo = std::min(lo, taps.first[i]);
    hi = std::max(hi, taps.first[i] + taps.count[i]);
  }
}

}  // namespace

bool PillowRunsHorizontalFirst(int64_t width, int64_t height, int64_t new_width, int64_t new_height,
                               PassOrder order) {
  switch (order) {
    case PassOrder::kPillow12_1:
      return true;
    case PassOrder::kPillow12_2:
      // Image.resize (Python side): images over 100 times taller than wide that lose height go vertical first.
      return !(height > width * 100 && new_height < height);
    case PassOrder::kPillow13:
    default: {
      // Resample.c: "if height is being scaled down more than twice the amount the width is, run the
      // vertical pass first". Amounts are pixel counts.
      const int64_t dy = height - new_height, dx = width - new_width;
      return !(dy > 0 && dy > dx * 2);
    }
  }
}

void ClipPreprocessInto(const uint8_t* rgb, int64_t width, int64_t height, int64_t size, const float lut[3][256],
                        float* out, PassOrder order) {
  const ClipGeometry g = ComputeClipGeometry(width, height, size);
  if (g.left < 0 || g.top < 0) throw std::logic_error("centre crop larger than the resized image");
  const int64_t n = size;
  const bool resize_x = g.resized_width != width;
  const bool resize_y = g.resized_height != height;

  // Only the taps of the outputs inside the crop: each output depends on its own taps alone, so this
  // equals resizing the whole image and cropping afterwards, at a fraction of the work and memory.
  Taps horizontal, vertical;
  if (resize_x) horizontal = BicubicTaps(width, g.resized_width, g.left, g.left + n);
  if (resize_y) vertical = BicubicTaps(height, g.resized_height, g.top, g.top + n);

  View view{rgb, width * 3, 0, 0};
  std::vector<uint8_t> first_pass, second_pass;
  if (PillowRunsHorizontalFirst(width, height, g.resized_width, g.resized_height, order)) {
    if (resize_x) {
      int64_t row_lo = g.top, row_hi = g.top + n;  // source rows the vertical pass will read
      if (resize_y) TapSpan(vertical, row_lo, row_hi);
      view = HorizontalPass(view, horizontal, g.left, n, row_lo, row_hi, first_pass);
    }
    if (resize_y) view = VerticalPass(view, vertical, g.top, n, g.left, g.left + n, second_pass);
  } else {
    if (resize_y) {
      int64_t col_lo = g.left, col_hi = g.left + n;  // source columns the horizontal pass will read
      if (resize_x) TapSpan(horizontal, col_lo, col_hi);
      view = VerticalPass(view, vertical, g.top, n, col_lo, col_hi, first_pass);
    }
    if (resize_x) view = HorizontalPass(view, horizontal, g.left, n, g.top, g.top + n, second_pass);
  }

  const int64_t plane = n * n;
  for (int64_t y = 0; y < n; ++y) {
    const uint8_t* px = view.At(g.left, g.top + y);
    float* r = out + y * n;
    float* gr = out + plane + y * n;
    float* b = out + 2 * plane + y * n;
    for (int64_t x = 0; x < n; ++x, px += 3) {
      r[x] = lut[0][px[0]];
      gr[x] = lut[1][px[1]];
      b[x] = lut[2][px[2]];
    }
  }
}

namespace {

// ---------------------------------------------------------------------------------------------
// JS binding. Every argument is checked here again (the TS wrapper checks first) so that no call,
// however wrong, can read or write outside the arrays it was given.

std::string Describe(const Napi::Value& v) {
  if (v.IsNumber()) return std::to_string(v.As<Napi::Number>().DoubleValue());
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsTypedArray()) return "a TypedArray";
  return "a non-number";
}

int64_t IntegerArg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi) {
  const Napi::Value v = info[i];
  if (!v.IsNumber())
    throw Napi::TypeError::New(info.Env(), std::string("clipPreprocess: expected an integer for ") + name + " but received " +
                                               Describe(v));
  const double x = v.As<Napi::Number>().DoubleValue();
  if (!(x >= static_cast<double>(lo) && x <= static_cast<double>(hi)) || x != std::floor(x))
    throw Napi::RangeError::New(info.Env(), std::string("clipPreprocess: expected an integer between ") +
                                                std::to_string(lo) + " and " + std::to_string(hi) + " for " + name +
                                                " but received " + Describe(v));
  return static_cast<int64_t>(x);
}

Napi::Float32Array Float32Arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  const Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(info.Env(), std::string("clipPreprocess: expected a Float32Array for ") + name);
  return v.As<Napi::Float32Array>();
}

class ClipPreprocessWorker : public Napi::AsyncWorker {
 public:
  ClipPreprocessWorker(Napi::Env env, const Napi::Uint8Array& rgb, Napi::Float32Array out, int64_t width,
                       int64_t height, int64_t size, int64_t slot, PassOrder order)
      : Napi::AsyncWorker(env, "img2prompt.clipPreprocess"),
        deferred_(Napi::Promise::Deferred::New(env)),
        rgb_ref_(Napi::Persistent(rgb)),
        out_ref_(Napi::Persistent(out)),
        rgb_(rgb.Data()),
        out_(out.Data() + slot * 3 * size * size),
        width_(width),
        height_(height),
        size_(size),
        order_(order) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }
  float (*Lut())[256] { return lut_; }

 protected:
  void Execute() override {
    try {
      ClipPreprocessInto(rgb_, width_, height_, size_, lut_, out_, order_);
    } catch (const std::bad_alloc&) {
      SetError("clipPreprocess: out of memory");
    } catch (const std::exception& e) {
      SetError(std::string("clipPreprocess: ") + e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  // The references keep both arrays (and the memory read and written in Execute) alive until the end.
  Napi::Reference<Napi::Uint8Array> rgb_ref_;
  Napi::Reference<Napi::Float32Array> out_ref_;
  const uint8_t* rgb_;
  float* out_;
  int64_t width_, height_, size_;
  PassOrder order_;
  float lut_[3][256];
};

// clipPreprocess(rgb: Uint8Array, width, height, size, mean: Float32Array(3), std: Float32Array(3),
//                out: Float32Array, slot, passOrder?: 'pillow13' | 'pillow12.2' | 'pillow12.1') → Promise<void>
Napi::Value ClipPreprocessJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 8 || info.Length() > 9)
    throw Napi::TypeError::New(env, "clipPreprocess(rgb, width, height, size, mean, std, out, slot, passOrder?): expected 8 or 9 arguments");
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(env, "clipPreprocess: expected a Uint8Array (RGB8, HWC) for rgb");
  const Napi::Uint8Array rgb = info[0].As<Napi::Uint8Array>();
  const int64_t width = IntegerArg(info, 1, "width", 1, kMaxSide);
  const int64_t height = IntegerArg(info, 2, "height", 1, kMaxSide);
  const int64_t size = IntegerArg(info, 3, "size", 1, kMaxSize);
  const Napi::Float32Array mean = Float32Arg(info, 4, "mean");
  const Napi::Float32Array std_dev = Float32Arg(info, 5, "std");
  Napi::Float32Array out = Float32Arg(info, 6, "out");
  const int64_t per_image = 3 * size * size;
  const auto slots = static_cast<int64_t>(out.ElementLength()) / per_image;
  if (slots < 1)
    throw Napi::RangeError::New(env, "clipPreprocess: out holds " + std::to_string(out.ElementLength()) +
                                         " floats, less than one image of 3x" + std::to_string(size) + "x" +
                                         std::to_string(size));
  const int64_t slot = IntegerArg(info, 7, "slot", 0, slots - 1);

  const auto rgb_bytes = static_cast<int64_t>(rgb.ByteLength());
  if (rgb_bytes != width * height * 3)
    throw Napi::RangeError::New(env, "clipPreprocess: rgb holds " + std::to_string(rgb_bytes) + " bytes, a " +
                                         std::to_string(width) + "x" + std::to_string(height) + " RGB image needs " +
                                         std::to_string(width * height * 3));
  if (mean.ElementLength() != 3 || std_dev.ElementLength() != 3)
    throw Napi::RangeError::New(env, "clipPreprocess: mean and std need 3 values each (R, G, B)");
  for (size_t c = 0; c < 3; ++c) {
    if (!std::isfinite(mean[c])) throw Napi::RangeError::New(env, "clipPreprocess: mean values must be finite");
    if (!(std::isfinite(std_dev[c]) && std_dev[c] > 0))
      throw Napi::RangeError::New(env, "clipPreprocess: std values must be finite and positive");
  }
  // A Uint8Array and a Float32Array may view one ArrayBuffer: refuse to write over the pixels being read.
  const auto* in_lo = reinterpret_cast<const uint8_t*>(rgb.Data());
  const auto* out_lo = reinterpret_cast<const uint8_t*>(out.Data() + slot * per_image);
  if (in_lo < out_lo + per_image * 4 && out_lo < in_lo + rgb_bytes)
    throw Napi::RangeError::New(env, "clipPreprocess: out slot " + std::to_string(slot) + " overlaps the rgb input");

  PassOrder order = PassOrder::kPillow13;
  if (info.Length() == 9 && !info[8].IsUndefined()) {
    const std::string name = info[8].IsString() ? info[8].As<Napi::String>().Utf8Value() : "";
    if (name == "pillow12.2")
      order = PassOrder::kPillow12_2;
    else if (name == "pillow12.1")
      order = PassOrder::kPillow12_1;
    else if (name != "pillow13")
      throw Napi::TypeError::New(env, "clipPreprocess: passOrder must be 'pillow13', 'pillow12.2' or 'pillow12.1'");
  }

  auto* worker = new ClipPreprocessWorker(env, rgb, out, width, height, size, slot, order);
  float (*lut)[256] = worker->Lut();
  for (int c = 0; c < 3; ++c) {
    const float m = mean[c], s = std_dev[c];
    // float32 like torch: ToTensor divides by 255, Normalize subtracts then divides.
    for (int u = 0; u < 256; ++u) lut[c][u] = (static_cast<float>(u) / 255.0f - m) / s;
  }
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// clipGeometry(width, height, size) → {resizedWidth, resizedHeight, left, top}
Napi::Value ClipGeometryJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t width = IntegerArg(info, 0, "width", 1, kMaxSide);
  const int64_t height = IntegerArg(info, 1, "height", 1, kMaxSide);
  const int64_t size = IntegerArg(info, 2, "size", 1, kMaxSize);
  const ClipGeometry g = ComputeClipGeometry(width, height, size);
  Napi::Object o = Napi::Object::New(env);
  o.Set("resizedWidth", Napi::Number::New(env, static_cast<double>(g.resized_width)));
  o.Set("resizedHeight", Napi::Number::New(env, static_cast<double>(g.resized_height)));
  o.Set("left", Napi::Number::New(env, static_cast<double>(g.left)));
  o.Set("top", Napi::Number::New(env, static_cast<double>(g.top)));
  return o;
}

}  // namespace

void RegisterClipPreprocess(Napi::Env env, Napi::Object exports) {
  exports.Set("clipPreprocess", Napi::Function::New(env, ClipPreprocessJs, "clipPreprocess"));
  exports.Set("clipGeometry", Napi::Function::New(env, ClipGeometryJs, "clipGeometry"));
}

}  // namespace img2prompt

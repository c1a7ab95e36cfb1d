// CLIP preprocessing as the reference pipelines do it on a PIL image:
//   open_clip / OpenAI CLIP: Resize(N, BICUBIC) → CenterCrop(N) → convert('RGB') → ToTensor → Normalize
//   transformers' CLIPImageProcessor: convert_to_rgb → torch resize → center_crop → (u - 255 mean) / (255 std)
// The resamplers (resample.h) reproduce Pillow's and torch's integer arithmetic; CLIP was trained on
// those pixels, and matching them bit for bit removes one source of drift from the embeddings. Only the
// window the centre crop keeps is ever computed.
#include "clip_preprocess.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "resample.h"

namespace img2prompt {

namespace {

constexpr int64_t kMaxSide = int64_t{1} << 24;
constexpr int64_t kMaxSize = 8192;

// Python's round(d / 2) (half to even), d >= 0: torchvision's crop offset.
int64_t HalfToEven(int64_t d) {
  int64_t q = d / 2;
  if ((d & 1) && (q & 1)) ++q;
  return q;
}

}  // namespace

ClipGeometry ComputeClipGeometry(int64_t width, int64_t height, int64_t size, CropRounding crop) {
  // BlipImageProcessor: the whole image resized to size x size, nothing cut off.
  if (crop == CropRounding::kNone) return ClipGeometry{size, size, 0, 0};
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
  // transformers: int((len - N) / 2.0), which truncates; torchvision: int(round((len - N) / 2.0)).
  const auto offset = [crop](int64_t d) { return crop == CropRounding::kFloor ? d / 2 : HalfToEven(d); };
  g.left = offset(g.resized_width - size);
  g.top = offset(g.resized_height - size);
  return g;
}

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

namespace {

// Copies the N×N crop at (left, top) of `view`, read through `read`, into normalised planes.
void WriteCrop(const View& view, PixelRead read, int64_t left, int64_t top, int64_t n, const float lut[3][256],
               float* out) {
  const int64_t plane = n * n;
  for (int64_t y = 0; y < n; ++y) {
    float* r = out + y * n;
    float* g = out + plane + y * n;
    float* b = out + 2 * plane + y * n;
    if (read == PixelRead::kRgb && view.channels == 3) {
      const uint8_t* px = view.At(left, top + y);
      for (int64_t x = 0; x < n; ++x, px += 3) {
        r[x] = lut[0][px[0]];
        g[x] = lut[1][px[1]];
        b[x] = lut[2][px[2]];
      }
      continue;
    }
    uint8_t rgb[3];
    for (int64_t x = 0; x < n; ++x) {
      ReadRgb(view, read, left + x, top + y, rgb);
      r[x] = lut[0][rgb[0]];
      g[x] = lut[1][rgb[1]];
      b[x] = lut[2][rgb[2]];
    }
  }
}

}  // namespace

void ClipPreprocessInto(const uint8_t* pixels, int64_t channels, int64_t width, int64_t height, int64_t size,
                        const float lut[3][256], float* out, const ClipRules& rules) {
  const ClipGeometry g = ComputeClipGeometry(width, height, size, rules.crop);
  if (g.left < 0 || g.top < 0) throw std::logic_error("centre crop larger than the resized image");
  const int64_t n = size;
  const View source{pixels, width * channels, channels, 0, 0};

  // How source pixels are read when they are resampled, and when they go to the crop unresampled
  // (PIL copies an image whose size does not change, so no premultiplication round trip happens).
  PixelRead resampled = PixelRead::kRgb, unresampled = PixelRead::kRgb;
  if (channels == 4 && rules.alpha == AlphaRule::kOntoWhite) resampled = unresampled = PixelRead::kOntoWhite;
  if (channels == 4 && rules.alpha == AlphaRule::kPremultiplied) resampled = PixelRead::kPremultiply;
  const PixelRead between = ReadChannels(resampled) == 4 ? PixelRead::kRgba : PixelRead::kRgb;

  if (rules.resampler == Resampler::kPillowNearest) {
    const std::vector<int64_t> xs = NearestSources(width, g.resized_width, g.left, g.left + n);
    const std::vector<int64_t> ys = NearestSources(height, g.resized_height, g.top, g.top + n);
    const int64_t plane = n * n;
    uint8_t rgb[3];
    for (int64_t y = 0; y < n; ++y) {
      for (int64_t x = 0; x < n; ++x) {
        ReadRgb(source, unresampled, xs[x], ys[y], rgb);
        for (int c = 0; c < 3; ++c) out[c * plane + y * n + x] = lut[c][rgb[c]];
      }
    }
    return;
  }

  const bool resize_x = g.resized_width != width;
  const bool resize_y = g.resized_height != height;
  const BicubicKernel kernel = rules.resampler == Resampler::kTorchBicubic ? BicubicKernel::kTorch : BicubicKernel::kPillow;
  Taps horizontal, vertical;
  if (resize_x) horizontal = BicubicTaps(kernel, width, g.resized_width, g.left, g.left + n);
  if (resize_y) vertical = BicubicTaps(kernel, height, g.resized_height, g.top, g.top + n);

  View view = source;
  PixelRead read = resize_x || resize_y ? resampled : unresampled;
  std::vector<uint8_t> first_pass, second_pass;
  const bool horizontal_first = rules.resampler == Resampler::kTorchBicubic ||
                                PillowRunsHorizontalFirst(width, height, g.resized_width, g.resized_height, rules.order);
  if (horizontal_first) {
    if (resize_x) {
      int64_t row_lo = g.top, row_hi = g.top + n;  // source rows the vertical pass will read
      if (resize_y) TapSpan(vertical, row_lo, row_hi);
      view = HorizontalPass(view, read, horizontal, g.left, n, row_lo, row_hi, first_pass);
      read = between;
    }
    if (resize_y) {
      view = VerticalPass(view, read, vertical, g.top, n, g.left, g.left + n, second_pass);
      read = between;
    }
  } else {
    if (resize_y) {
      int64_t col_lo = g.left, col_hi = g.left + n;  // source columns the horizontal pass will read
      if (resize_x) TapSpan(horizontal, col_lo, col_hi);
      view = VerticalPass(view, read, vertical, g.top, n, col_lo, col_hi, first_pass);
      read = between;
    }
    if (resize_x) {
      view = HorizontalPass(view, read, horizontal, g.left, n, g.top, g.top + n, second_pass);
      read = between;
    }
  }
  WriteCrop(view, read, g.left, g.top, n, lut, out);
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

// The value of `key` in the rules object: the index of one of `names`, or `fallback` when absent.
int Choice(const Napi::Env& env, const Napi::Object& rules, const char* key, std::initializer_list<const char*> names,
           int fallback) {
  const Napi::Value v = rules.Get(key);
  if (v.IsUndefined()) return fallback;
  const std::string given = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  std::string list;
  int i = 0;
  for (const char* name : names) {
    if (given == name) return i;
    list += (i++ ? ", '" : "'") + std::string(name) + "'";
  }
  throw Napi::TypeError::New(env, std::string("clipPreprocess: rules.") + key + " must be one of " + list);
}

enum class Normalisation {
  kToTensor,  // torchvision ToTensor + Normalize: (u / 255 - mean) / std
  kFused,     // transformers' fused rescale + normalize: (u - 255 mean) / (255 std)
};

class ClipPreprocessWorker : public Napi::AsyncWorker {
 public:
  ClipPreprocessWorker(Napi::Env env, const Napi::Uint8Array& pixels, Napi::Float32Array out, int64_t channels,
                       int64_t width, int64_t height, int64_t size, int64_t slot, const ClipRules& rules)
      : Napi::AsyncWorker(env, "img2prompt.clipPreprocess"),
        deferred_(Napi::Promise::Deferred::New(env)),
        pixels_ref_(Napi::Persistent(pixels)),
        out_ref_(Napi::Persistent(out)),
        pixels_(pixels.Data()),
        out_(out.Data() + slot * 3 * size * size),
        channels_(channels),
        width_(width),
        height_(height),
        size_(size),
        rules_(rules) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }
  float (*Lut())[256] { return lut_; }

 protected:
  void Execute() override {
    try {
      ClipPreprocessInto(pixels_, channels_, width_, height_, size_, lut_, out_, rules_);
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
  Napi::Reference<Napi::Uint8Array> pixels_ref_;
  Napi::Reference<Napi::Float32Array> out_ref_;
  const uint8_t* pixels_;
  float* out_;
  int64_t channels_, width_, height_, size_;
  ClipRules rules_;
  float lut_[3][256];
};

// clipPreprocess(pixels: Uint8Array, width, height, size, mean: Float32Array(3), std: Float32Array(3),
//                out: Float32Array, slot, rules?: {channels?: 3 | 4, resampler?, passOrder?, crop?, alpha?,
//                normalisation?}) → Promise<void>
Napi::Value ClipPreprocessJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 8 || info.Length() > 9)
    throw Napi::TypeError::New(env, "clipPreprocess(pixels, width, height, size, mean, std, out, slot, rules?): expected 8 or 9 arguments");
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(env, "clipPreprocess: expected a Uint8Array (RGB8 or RGBA8, HWC) for pixels");
  const Napi::Uint8Array pixels = info[0].As<Napi::Uint8Array>();
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

  Napi::Object given = Napi::Object::New(env);
  if (info.Length() == 9 && !info[8].IsUndefined()) {
    if (!info[8].IsObject() || info[8].IsTypedArray())
      throw Napi::TypeError::New(env, "clipPreprocess: expected an object for rules");
    given = info[8].As<Napi::Object>();
  }
  int64_t channels = 3;
  if (const Napi::Value v = given.Get("channels"); !v.IsUndefined()) {
    const double c = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : 0;
    if (c != 3 && c != 4) throw Napi::TypeError::New(env, "clipPreprocess: rules.channels must be 3 or 4");
    channels = static_cast<int64_t>(c);
  }
  ClipRules rules;
  rules.resampler = static_cast<Resampler>(Choice(env, given, "resampler", {"pillow-bicubic", "pillow-nearest", "torch-bicubic"}, 0));
  rules.order = static_cast<PassOrder>(Choice(env, given, "passOrder", {"pillow13", "pillow12.2", "pillow12.1"}, 0));
  rules.crop = static_cast<CropRounding>(Choice(env, given, "crop", {"half-to-even", "floor", "none"}, 0));
  rules.alpha = static_cast<AlphaRule>(Choice(env, given, "alpha", {"drop", "onto-white", "premultiplied"}, 0));
  const auto normalisation = static_cast<Normalisation>(Choice(env, given, "normalisation", {"to-tensor", "fused"}, 0));

  const auto pixel_bytes = static_cast<int64_t>(pixels.ByteLength());
  if (pixel_bytes != width * height * channels)
    throw Napi::RangeError::New(env, "clipPreprocess: pixels holds " + std::to_string(pixel_bytes) + " bytes, a " +
                                         std::to_string(width) + "x" + std::to_string(height) + "x" +
                                         std::to_string(channels) + " image needs " +
                                         std::to_string(width * height * channels));
  if (mean.ElementLength() != 3 || std_dev.ElementLength() != 3)
    throw Napi::RangeError::New(env, "clipPreprocess: mean and std need 3 values each (R, G, B)");
  for (size_t c = 0; c < 3; ++c) {
    if (!std::isfinite(mean[c])) throw Napi::RangeError::New(env, "clipPreprocess: mean values must be finite");
    if (!(std::isfinite(std_dev[c]) && std_dev[c] > 0))
      throw Napi::RangeError::New(env, "clipPreprocess: std values must be finite and positive");
  }
  // A Uint8Array and a Float32Array may view one ArrayBuffer: refuse to write over the pixels being read.
  const auto* in_lo = reinterpret_cast<const uint8_t*>(pixels.Data());
  const auto* out_lo = reinterpret_cast<const uint8_t*>(out.Data() + slot * per_image);
  if (in_lo < out_lo + per_image * 4 && out_lo < in_lo + pixel_bytes)
    throw Napi::RangeError::New(env, "clipPreprocess: out slot " + std::to_string(slot) + " overlaps the pixels input");

  auto* worker = new ClipPreprocessWorker(env, pixels, out, channels, width, height, size, slot, rules);
  float (*lut)[256] = worker->Lut();
  for (int c = 0; c < 3; ++c) {
    const float m = mean[c], s = std_dev[c];
    // float32 like torch. transformers scales mean and std by 255 (float32 tensors times 1 / (1 / 255),
    // which rounds to 255.0f) instead of dividing the pixels.
    const float m255 = m * 255.0f, s255 = s * 255.0f;
    for (int u = 0; u < 256; ++u) {
      lut[c][u] = normalisation == Normalisation::kFused ? (static_cast<float>(u) - m255) / s255
                                                         : (static_cast<float>(u) / 255.0f - m) / s;
    }
  }
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// clipGeometry(width, height, size, crop?: 'half-to-even' | 'floor' | 'none') → {resizedWidth, resizedHeight, left, top}
Napi::Value ClipGeometryJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t width = IntegerArg(info, 0, "width", 1, kMaxSide);
  const int64_t height = IntegerArg(info, 1, "height", 1, kMaxSide);
  const int64_t size = IntegerArg(info, 2, "size", 1, kMaxSize);
  Napi::Object given = Napi::Object::New(env);
  if (info.Length() > 3 && !info[3].IsUndefined()) given.Set("crop", info[3]);
  const auto crop = static_cast<CropRounding>(Choice(env, given, "crop", {"half-to-even", "floor", "none"}, 0));
  const ClipGeometry g = ComputeClipGeometry(width, height, size, crop);
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

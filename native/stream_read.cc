#include "stream_read.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define IMG2PROMPT_X86 1
#endif

namespace img2prompt {
namespace {

// Eight lanes of partial sums, like the dot kernels' portable path.
double SumScalar(const float* p, size_t n) {
  float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) lanes[l] += p[i + l];
  double sum = 0;
  for (; i < n; ++i) sum += p[i];
  for (float l : lanes) sum += l;
  return sum;
}

#ifdef IMG2PROMPT_X86
// Four independent accumulators (32 floats a step) so the adds never wait on each other: the loop is
// bound by the loads alone.
__attribute__((target("avx2"))) double SumAvx2(const float* p, size_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_add_ps(a0, _mm256_loadu_ps(p + i));
    a1 = _mm256_add_ps(a1, _mm256_loadu_ps(p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_loadu_ps(p + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_loadu_ps(p + i + 24));
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  double sum = 0;
  for (float l : lanes) sum += l;
  for (; i < n; ++i) sum += p[i];
  return sum;
}

bool HasAvx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
}
#endif

using SumFn = double (*)(const float*, size_t);

SumFn PickSum(const char** name) {
#ifdef IMG2PROMPT_X86
  static const bool avx2 = HasAvx2();
  if (avx2) {
    *name = "avx2";
    return SumAvx2;
  }
#endif
  *name = "scalar";
  return SumScalar;
}

}  // namespace

double StreamSum(const float* data, size_t count, unsigned threads, double* seconds) {
  const char* name;
  const SumFn sum = PickSum(&name);
  threads = std::max(1u, threads);
  // Slices of whole 32-float steps, so each thread's loop runs vectorised to its end.
  const size_t per = (count / threads + 31) / 32 * 32;
  std::vector<double> partial(threads, 0.0);
  std::atomic<bool> go{false};
  std::atomic<unsigned> ready{0};
  auto slice = [&](unsigned t) {
    const size_t first = std::min(count, t * per), last = t + 1 == threads ? count : std::min(count, first + per);
    ready.fetch_add(1);
    while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
    partial[t] = sum(data + first, last - first);
  };
  std::vector<std::thread> pool;
  try {
    for (unsigned t = 1; t < threads; ++t) pool.emplace_back(slice, t);
  } catch (...) {
    go.store(true, std::memory_order_release);  // release the ones started before failing
    for (std::thread& t : pool) t.join();
    throw;
  }
  // Time from the moment every thread is waiting at the start line, not counting thread creation.
  while (ready.load() + 1 < threads) std::this_thread::yield();
  const auto start = std::chrono::steady_clock::now();
  go.store(true, std::memory_order_release);
  slice(0);
  for (std::thread& t : pool) t.join();
  *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

namespace {

class StreamReadWorker : public Napi::AsyncWorker {
 public:
  StreamReadWorker(Napi::Env env, Napi::Float32Array data, unsigned threads, unsigned passes)
      : Napi::AsyncWorker(env, "img2prompt.streamRead"),
        deferred_(Napi::Promise::Deferred::New(env)),
        data_(data.Data()),
        count_(data.ElementLength()),
        threads_(threads),
        seconds_(passes) {
    data_ref_ = Napi::Persistent(data);
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      for (double& s : seconds_) sum_ = StreamSum(data_, count_, threads_, &s);
    } catch (const std::exception& e) {
      SetError(std::string("streamRead: ") + e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object result = Napi::Object::New(env);
    result.Set("sum", Napi::Number::New(env, sum_));
    Napi::Array seconds = Napi::Array::New(env, seconds_.size());
    for (size_t i = 0; i < seconds_.size(); ++i) seconds.Set(static_cast<uint32_t>(i), Napi::Number::New(env, seconds_[i]));
    result.Set("seconds", seconds);
    const char* name;
    PickSum(&name);
    result.Set("kernel", Napi::String::New(env, name));
    deferred_.Resolve(result);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::Reference<Napi::Float32Array> data_ref_;
  const float* data_;
  size_t count_;
  unsigned threads_;
  std::vector<double> seconds_;
  double sum_ = 0;
};

unsigned ReadSmall(Napi::Env env, Napi::Object options, const char* key, unsigned fallback, unsigned max) {
  Napi::Value v = options.Get(key);
  if (v.IsUndefined()) return fallback;
  const double x = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
  if (!(x >= 1 && x <= max && x == std::floor(x)))
    throw Napi::RangeError::New(env, std::string("streamRead: ") + key + " must be an integer from 1 to " + std::to_string(max));
  return static_cast<unsigned>(x);
}

Napi::Value StreamReadJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(env, "streamRead: data must be a Float32Array");
  Napi::Object options = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  const unsigned threads = ReadSmall(env, options, "threads", hw, 1024);
  const unsigned passes = ReadSmall(env, options, "passes", 1, 1000);
  auto* worker = new StreamReadWorker(env, info[0].As<Napi::Float32Array>(), threads, passes);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace

void RegisterStreamRead(Napi::Env env, Napi::Object exports) {
  exports.Set("streamRead", Napi::Function::New(env, StreamReadJs, "streamRead"));
}

}  // namespace img2prompt

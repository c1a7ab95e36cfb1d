// JS bindings of the similarity kernel (topk.cc): topk(), scoresAll(), topkKernel(). src/rank/topk.ts
// checks every argument with a full message first; the guards here only keep a wrong call inside the
// arrays it was given (js_guard.h).
#include "topk_binding.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <limits>
#include <string>
#include <utility>

#include "js_guard.h"
#include "simd_dot.h"
#include "topk.h"

namespace img2prompt {
namespace {

struct ArrayView {
  const void* data;
  size_t length;  // elements
};

// Element pointer straight from the typed array (also right for a SharedArrayBuffer behind it).
ArrayView ViewOf(const Napi::TypedArray& ta) {
  if (ta.TypedArrayType() == napi_uint16_array) {
    Napi::Uint16Array a = ta.As<Napi::Uint16Array>();
    return {a.Data(), a.ElementLength()};
  }
  Napi::Float32Array a = ta.As<Napi::Float32Array>();
  return {a.Data(), a.ElementLength()};
}

bool IsTypedArrayOf(const Napi::Value& v, napi_typedarray_type type) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == type;
}

// An option that is either absent or an integer in [lo, hi].
size_t OptionalCount(Napi::Env env, Napi::Object options, const char* fn, const char* key, int64_t lo, int64_t hi, size_t fallback) {
  Napi::Value v = options.Get(key);
  if (v.IsUndefined()) return fallback;
  return static_cast<size_t>(GuardedInteger(env, v, fn, std::string("option ") + key, lo, hi));
}

// Arguments shared by topk() and scoresAll(): (queries, queryDim, bank, bankDim, ..., options).
struct ParsedJob {
  SimilarityJob job;
  Napi::Reference<Napi::TypedArray> queries_ref;
  Napi::Reference<Napi::TypedArray> bank_ref;
  bool least = false;
};

ParsedJob ParseJob(const Napi::CallbackInfo& info, const char* fn, size_t options_at) {
  Napi::Env env = info.Env();
  JS_GUARD(IsTypedArrayOf(info[0], napi_float32_array), env, fn, "queries");
  JS_GUARD(IsTypedArrayOf(info[2], napi_float32_array) || IsTypedArrayOf(info[2], napi_uint16_array), env, fn, "bank");
  Napi::TypedArray queries = info[0].As<Napi::TypedArray>();
  Napi::TypedArray bank = info[2].As<Napi::TypedArray>();
  // The kernel walks rows of `dim` values in both arrays: the dimension must be one and divide both.
  const auto dim = static_cast<size_t>(GuardedInteger(env, info[1], fn, "query dimension", 1, INT32_MAX));
  JS_GUARD(GuardedInteger(env, info[3], fn, "bank dimension", 1, INT32_MAX) == static_cast<int64_t>(dim), env, fn, "bank dimension");
  const ArrayView q = ViewOf(queries), b = ViewOf(bank);
  JS_GUARD(q.length % dim == 0, env, fn, "queries length");
  JS_GUARD(b.length % dim == 0, env, fn, "bank length");
  ParsedJob p;
  p.job.queries = static_cast<const float*>(q.data);
  p.job.query_count = q.length / dim;
  p.job.bank = b.data;
  p.job.bank_f16 = bank.TypedArrayType() == napi_uint16_array;
  p.job.bank_rows = b.length / dim;
  p.job.dim = dim;
  // Results index rows with int32.
  JS_GUARD(p.job.bank_rows <= static_cast<size_t>(std::numeric_limits<int32_t>::max()), env, fn, "bank rows");

  Napi::Value given = info.Length() > options_at ? info[options_at] : env.Undefined();
  JS_GUARD(given.IsUndefined() || given.IsObject(), env, fn, "options");
  Napi::Object options = given.IsObject() ? given.As<Napi::Object>() : Napi::Object::New(env);
  p.job.threads = static_cast<unsigned>(OptionalCount(env, options, fn, "threads", 0, 1024, 0));
  p.job.force_threads = static_cast<unsigned>(OptionalCount(env, options, fn, "forceThreads", 1, 1024, 0));
  p.job.block_rows = OptionalCount(env, options, fn, "blockRows", 1, int64_t{1} << 24, 0);
  for (const char* key : {"simd", "least"}) {
    Napi::Value v = options.Get(key);
    JS_GUARD(v.IsUndefined() || v.IsBoolean(), env, fn, std::string("option ") + key);
  }
  if (options.Get("simd").IsBoolean()) p.job.allow_simd = options.Get("simd").As<Napi::Boolean>().Value();
  p.least = options.Get("least").IsBoolean() && options.Get("least").As<Napi::Boolean>().Value();
  // The worker reads both arrays in place; these references keep them alive until it is done.
  p.queries_ref = Napi::Persistent(queries);
  p.bank_ref = Napi::Persistent(bank);
  return p;
}

class TopKWorker : public Napi::AsyncWorker {
 public:
  TopKWorker(Napi::Env env, ParsedJob parsed, size_t k)
      : Napi::AsyncWorker(env, "img2prompt.topk"),
        deferred_(Napi::Promise::Deferred::New(env)),
        parsed_(std::move(parsed)),
        k_(std::min(k, parsed_.job.bank_rows)),
        least_(parsed_.least) {
    // Results are written straight into the arrays handed back, so nothing is copied afterwards.
    Napi::Int32Array indices = Napi::Int32Array::New(env, parsed_.job.query_count * k_);
    Napi::Float32Array scores = Napi::Float32Array::New(env, parsed_.job.query_count * k_);
    indices_ = indices.Data();
    scores_ = scores.Data();
    indices_ref_ = Napi::Persistent(indices);
    scores_ref_ = Napi::Persistent(scores);
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      threads_ = TopKSimilar(parsed_.job, k_, least_, indices_, scores_);
    } catch (const std::exception& e) {
      SetError(std::string("topk: ") + e.what());
    }
  }
  void OnOK() override {
    Napi::Object result = Napi::Object::New(Env());
    result.Set("indices", indices_ref_.Value());
    result.Set("scores", scores_ref_.Value());
    result.Set("k", Napi::Number::New(Env(), static_cast<double>(k_)));
    result.Set("threads", Napi::Number::New(Env(), threads_));
    deferred_.Resolve(result);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  ParsedJob parsed_;
  size_t k_;
  bool least_;
  unsigned threads_ = 0;
  Napi::Reference<Napi::Int32Array> indices_ref_;
  Napi::Reference<Napi::Float32Array> scores_ref_;
  int32_t* indices_ = nullptr;
  float* scores_ = nullptr;
};

class AllScoresWorker : public Napi::AsyncWorker {
 public:
  AllScoresWorker(Napi::Env env, ParsedJob parsed)
      : Napi::AsyncWorker(env, "img2prompt.scoresAll"),
        deferred_(Napi::Promise::Deferred::New(env)),
        parsed_(std::move(parsed)) {
    Napi::Float32Array out = Napi::Float32Array::New(env, parsed_.job.query_count * parsed_.job.bank_rows);
    out_ = out.Data();
    out_ref_ = Napi::Persistent(out);
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      AllSimilarities(parsed_.job, out_);
    } catch (const std::exception& e) {
      SetError(std::string("scoresAll: ") + e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(out_ref_.Value()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  ParsedJob parsed_;
  Napi::Reference<Napi::Float32Array> out_ref_;
  float* out_ = nullptr;
};

// topk(queries, queryDim, bank, bankDim, k, { threads?, least?, simd?, forceThreads?, blockRows? })
//   -> Promise<{ indices, scores, k, threads }>
Napi::Value TopKJs(const Napi::CallbackInfo& info) {
  ParsedJob parsed = ParseJob(info, "topk", 5);
  // k is clamped to the bank rows before anything is sized by it.
  const auto k = static_cast<size_t>(GuardedInteger(info.Env(), info[4], "topk", "k", 0, INT64_C(9007199254740991)));
  auto* worker = new TopKWorker(info.Env(), std::move(parsed), k);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// scoresAll(queries, queryDim, bank, bankDim, { threads?, simd?, forceThreads?, blockRows? }) -> Promise<Float32Array [B x N]>
Napi::Value ScoresAllJs(const Napi::CallbackInfo& info) {
  auto* worker = new AllScoresWorker(info.Env(), ParseJob(info, "scoresAll", 4));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value TopKKernelJs(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), SelectDotKernels(true).name);
}

}  // namespace

void RegisterTopK(Napi::Env env, Napi::Object exports) {
  exports.Set("topk", Napi::Function::New(env, TopKJs, "topk"));
  exports.Set("scoresAll", Napi::Function::New(env, ScoresAllJs, "scoresAll"));
  exports.Set("topkKernel", Napi::Function::New(env, TopKKernelJs, "topkKernel"));
}

}  // namespace img2prompt

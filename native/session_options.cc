#include "session_options.h"

#include <string>

#include "js_guard.h"
#include "ort_env.h"

namespace img2prompt {

// Like onnxruntime-node's session options parser, a wrong-typed option throws instead of being
// dropped; the messages are terse because Session.open (src/runtime/session.ts) checks first.
OpenOptions ParseOpenOptions(Napi::Env env, const Napi::Value& value) {
  OpenOptions o;
  if (value.IsUndefined()) return o;
  JS_GUARD(value.IsObject(), env, "openSession", "options");
  Napi::Object obj = value.As<Napi::Object>();
  Napi::Value providers = obj.Get("providers");
  if (!providers.IsUndefined()) {
    JS_GUARD(providers.IsArray(), env, "openSession", "options.providers");
    Napi::Array arr = providers.As<Napi::Array>();
    o.providers.clear();
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      Napi::Value p = arr.Get(i);
      const std::string name = p.IsString() ? p.As<Napi::String>().Utf8Value() : "";
      JS_GUARD(name == "cuda" || name == "cpu", env, "openSession", "options.providers");
      o.providers.push_back(name);
    }
  }
  Napi::Value threads = obj.Get("intraOpThreads");
  if (!threads.IsUndefined()) o.intra_op_threads = static_cast<int>(GuardedInteger(env, threads, "openSession", "options.intraOpThreads", 0, 1 << 16));
  Napi::Value spin = obj.Get("spinWait");
  if (!spin.IsUndefined()) {
    JS_GUARD(spin.IsBoolean(), env, "openSession", "options.spinWait");
    o.spin_wait = spin.As<Napi::Boolean>().Value();
  }
  Napi::Value level = obj.Get("optimization");
  if (!level.IsUndefined()) {
    const std::string name = level.IsString() ? level.As<Napi::String>().Utf8Value() : "";
    if (name == "disabled") o.optimization = ORT_DISABLE_ALL;
    else if (name == "basic") o.optimization = ORT_ENABLE_BASIC;
    else if (name == "extended") o.optimization = ORT_ENABLE_EXTENDED;
    else if (name == "all") o.optimization = ORT_ENABLE_ALL;
    else ThrowInvalid(env, "openSession", "options.optimization");
  }
  return o;
}

OrtSessionOptions* NewSessionOptions(const OpenOptions& options, bool with_cuda) {
  const OrtApi& ort = Ort();
  OrtSessionOptions* so = nullptr;
  ORT_CHECK(ort.CreateSessionOptions(&so), "");
  try {
    ORT_CHECK(ort.SetIntraOpNumThreads(so, options.intra_op_threads), "");
    ORT_CHECK(ort.SetInterOpNumThreads(so, 1), "");
    ORT_CHECK(ort.SetSessionExecutionMode(so, ORT_SEQUENTIAL), "");
    ORT_CHECK(ort.SetSessionGraphOptimizationLevel(so, options.optimization), "");
    if (!options.spin_wait) ORT_CHECK(ort.AddSessionConfigEntry(so, "session.intra_op.allow_spinning", "0"), "");
    if (with_cuda) {
      OrtCUDAProviderOptionsV2* cuda = nullptr;
      ORT_CHECK(ort.CreateCUDAProviderOptions(&cuda), "CUDA provider options");
      OrtStatus* st = ort.SessionOptionsAppendExecutionProvider_CUDA_V2(so, cuda);
      ort.ReleaseCUDAProviderOptions(cuda);
      ORT_CHECK(st, "CUDA provider");
    }
  } catch (...) {
    ort.ReleaseSessionOptions(so);
    throw;
  }
  return so;
}

}  // namespace img2prompt

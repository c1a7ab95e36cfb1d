// Entry point of the img2prompt native addon.
#include <napi.h>

#include "clip_preprocess.h"
#include "io_binding.h"
#include "ort_env.h"
#include "session.h"
#include "stream_read.h"
#include "topk_binding.h"

namespace img2prompt {

Napi::Value OrtVersionJs(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), OrtVersion()); }

// Creates the process's OrtEnv now, on the calling (JS) thread, so the caller controls the environment
// variables ORT reads while creating it (see src/runtime/ort-environment.ts); otherwise the first session does.
Napi::Value InitEnvironmentJs(const Napi::CallbackInfo& info) {
  try {
    OrtEnvironment();
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Session::Init(env, exports);
  RegisterTopK(env, exports);
  RegisterIoBinding(env, exports);
  exports.Set("openSession", Napi::Function::New(env, OpenSession, "openSession"));
  exports.Set("availableProviders", Napi::Function::New(env, AvailableProviders, "availableProviders"));
  exports.Set("ortVersion", Napi::Function::New(env, OrtVersionJs, "ortVersion"));
  exports.Set("initEnvironment", Napi::Function::New(env, InitEnvironmentJs, "initEnvironment"));
  RegisterClipPreprocess(env, exports);
  RegisterStreamRead(env, exports);
  return exports;
}

}  // namespace img2prompt

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return img2prompt::Init(env, exports); }

NODE_API_MODULE(img2prompt_native, InitAddon)

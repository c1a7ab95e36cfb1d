// Entry point of the img2prompt native addon.
#include <napi.h>

#include "clip_preprocess.h"
#include "ort_env.h"
#include "session.h"
#include "stream_read.h"
#include "topk_binding.h"

namespace img2prompt {

Napi::Value OrtVersionJs(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), OrtVersion()); }

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Session::Init(env, exports);
  RegisterTopK(env, exports);
  exports.Set("openSession", Napi::Function::New(env, OpenSession, "openSession"));
  exports.Set("availableProviders", Napi::Function::New(env, AvailableProviders, "availableProviders"));
  exports.Set("ortVersion", Napi::Function::New(env, OrtVersionJs, "ortVersion"));
  RegisterClipPreprocess(env, exports);
  RegisterStreamRead(env, exports);
  return exports;
}

}  // namespace img2prompt

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return img2prompt::Init(env, exports); }

NODE_API_MODULE(img2prompt_native, InitAddon)

// An ONNX Runtime inference session exposed to JS. The OrtSession lives in a SessionCore shared
// between the JS object and every run in flight, so close() during a run is safe.
#pragma once
#include <napi.h>
#include <onnxruntime_c_api.h>

#include <memory>
#include <string>
#include <vector>

#include "session_options.h"
#include "tensor_io.h"

namespace img2prompt {

class SessionCore {
 public:
  // `bytes` non-null: the model comes from memory; else from `path`. Errors carry ORT's reason alone:
  // the caller knows which model it opened.
  SessionCore(const std::string& path, const void* bytes, size_t length, const OpenOptions& options);
  ~SessionCore();
  SessionCore(const SessionCore&) = delete;
  SessionCore& operator=(const SessionCore&) = delete;

  OrtSession* session() const { return session_; }
  const std::string& provider() const { return provider_; }
  const std::string& provider_note() const { return provider_note_; }
  const std::vector<TensorSpec>& inputs() const { return inputs_; }
  const std::vector<TensorSpec>& outputs() const { return outputs_; }

 private:
  OrtSession* Create(const std::string& path, const void* bytes, size_t length, const OpenOptions& options, bool with_cuda);
  void ReadSignature();

  OrtSession* session_ = nullptr;
  std::string provider_ = "cpu";
  std::string provider_note_;
  std::vector<TensorSpec> inputs_;
  std::vector<TensorSpec> outputs_;
};

class Session : public Napi::ObjectWrap<Session> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  static Napi::Object NewInstance(Napi::Env env, std::shared_ptr<SessionCore> core);
  explicit Session(const Napi::CallbackInfo& info);

  std::shared_ptr<SessionCore> core() const { return core_; }
  // The core of `value` when it is an open Session of this environment, else nullptr.
  static std::shared_ptr<SessionCore> CoreOf(Napi::Env env, const Napi::Value& value);

 private:
  Napi::Value Inputs(const Napi::CallbackInfo& info);
  Napi::Value Outputs(const Napi::CallbackInfo& info);
  Napi::Value Provider(const Napi::CallbackInfo& info);
  Napi::Value ProviderNote(const Napi::CallbackInfo& info);
  Napi::Value Run(const Napi::CallbackInfo& info);
  Napi::Value RunSync(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  std::shared_ptr<SessionCore> Live(Napi::Env env) const;

  std::shared_ptr<SessionCore> core_;
};

// openSession(model: string | Uint8Array, options) → Promise<Session>
Napi::Value OpenSession(const Napi::CallbackInfo& info);
// availableProviders() → string[] (ORT's own names)
Napi::Value AvailableProviders(const Napi::CallbackInfo& info);

}  // namespace img2prompt

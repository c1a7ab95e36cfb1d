#include "session.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

#include "js_guard.h"
#include "ort_env.h"
#include "tensor_io.h"

namespace img2prompt {
namespace {

// Per-environment constructor of the JS Session class (worker threads each get their own).
struct SessionClass {
  Napi::FunctionReference constructor;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// SessionCore

SessionCore::SessionCore(const std::string& path, const void* bytes, size_t length, const OpenOptions& options) {
  auto listed = [&](const char* p) { return std::find(options.providers.begin(), options.providers.end(), p) != options.providers.end(); };
  if (listed("cuda")) {
    try {
      session_ = Create(path, bytes, length, options, true);
      provider_ = "cuda";
    } catch (const OrtError& e) {
      // CUDA was asked for but cannot take this session: fall back only where the caller listed the CPU
      // too, and say why; asked for CUDA alone, the caller gets the error instead of a silent CPU run.
      if (!listed("cpu")) throw;
      provider_note_ = std::string("CUDA unavailable, using CPU: ") + e.what();
    }
  }
  if (session_ == nullptr) {
    session_ = Create(path, bytes, length, options, false);
    provider_ = "cpu";
  }
  ReadSignature();
}

SessionCore::~SessionCore() {
  if (session_) Ort().ReleaseSession(session_);
}

OrtSession* SessionCore::Create(const std::string& path, const void* bytes, size_t length, const OpenOptions& options,
                                bool with_cuda) {
  const OrtApi& ort = Ort();
  OrtEnv* env = OrtEnvironment();  // before any provider set-up: providers log through the env's logger
  OrtSessionOptions* so = NewSessionOptions(options, with_cuda);
  OrtSession* session = nullptr;
  OrtStatus* status = bytes ? ort.CreateSessionFromArray(env, bytes, length, so, &session)
                            : ort.CreateSession(env, path.c_str(), so, &session);
  ort.ReleaseSessionOptions(so);
  ORT_CHECK(status, "");
  return session;
}

void SessionCore::ReadSignature() {
  const OrtApi& ort = Ort();
  OrtAllocator* allocator = nullptr;
  ORT_CHECK(ort.GetAllocatorWithDefaultOptions(&allocator), "");
  size_t n_in = 0, n_out = 0;
  ORT_CHECK(ort.SessionGetInputCount(session_, &n_in), "");
  ORT_CHECK(ort.SessionGetOutputCount(session_, &n_out), "");
  for (size_t i = 0; i < n_in; ++i) inputs_.push_back(ReadSpec(session_, i, true, allocator));
  for (size_t i = 0; i < n_out; ++i) outputs_.push_back(ReadSpec(session_, i, false, allocator));
}

// ---------------------------------------------------------------------------------------------
// Opening a session off the JS thread

namespace {

class OpenWorker : public Napi::AsyncWorker {
 public:
  OpenWorker(Napi::Env env, std::string path, Napi::Uint8Array buffer, OpenOptions options)
      : Napi::AsyncWorker(env, "img2prompt.openSession"),
        deferred_(Napi::Promise::Deferred::New(env)),
        path_(std::move(path)),
        options_(std::move(options)) {
    if (!buffer.IsEmpty()) {
      buffer_ref_ = Napi::Persistent(buffer);  // keeps the bytes alive until the session is built
      bytes_ = buffer.Data();
      length_ = buffer.ByteLength();
    }
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      core_ = std::make_shared<SessionCore>(path_, bytes_, length_, options_);
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(Session::NewInstance(Env(), core_)); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::string path_;
  Napi::Reference<Napi::Uint8Array> buffer_ref_;
  const void* bytes_ = nullptr;
  size_t length_ = 0;
  OpenOptions options_;
  std::shared_ptr<SessionCore> core_;
};

}  // namespace

Napi::Value OpenSession(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const bool is_bytes = info[0].IsTypedArray() && info[0].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array;
  JS_GUARD(info[0].IsString() || is_bytes, env, "openSession", "model");
  OpenOptions options = ParseOpenOptions(env, info[1]);
  std::string path;
  Napi::Uint8Array buffer;
  if (is_bytes)
    buffer = info[0].As<Napi::Uint8Array>();
  else
    path = info[0].As<Napi::String>().Utf8Value();
  auto* worker = new OpenWorker(env, path, buffer, options);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value AvailableProviders(const Napi::CallbackInfo& info) {
  char** names = nullptr;
  int count = 0;
  ORT_CHECK(Ort().GetAvailableProviders(&names, &count), "listing execution providers");
  Napi::Array out = Napi::Array::New(info.Env(), count);
  for (int i = 0; i < count; ++i) out.Set(i, Napi::String::New(info.Env(), names[i]));
  ORT_CHECK(Ort().ReleaseAvailableProviders(names, count), "releasing provider names");
  return out;
}

// ---------------------------------------------------------------------------------------------
// Running

namespace {

// One tensor handed to ORT over memory owned by a JS TypedArray (no copy). The reference keeps
// the array alive until the run has finished.
struct BorrowedTensor {
  Napi::Reference<Napi::TypedArray> array;
  OrtValue* value = nullptr;
};

class RunWorker : public Napi::AsyncWorker {
 public:
  RunWorker(Napi::Env env, std::shared_ptr<SessionCore> core)
      : Napi::AsyncWorker(env, "img2prompt.run"), deferred_(Napi::Promise::Deferred::New(env)), core_(std::move(core)) {}
  ~RunWorker() override {
    for (auto& t : inputs_)
      if (t.value) Ort().ReleaseValue(t.value);
    for (OrtValue* v : outputs_)
      if (v) Ort().ReleaseValue(v);
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }

  void AddInput(Napi::Env env, const std::string& name, const Napi::TypedArray& data, const std::vector<int64_t>& dims) {
    const TensorSpec* spec = FindSpec(core_->inputs(), name);
    JS_GUARD(spec != nullptr, env, "run", "input name");
    const ElementType* type = ElementTypeByOnnx(spec->type);
    JS_GUARD(type != nullptr, env, "run", "input type");
    BorrowedTensor t;
    t.value = WrapArray(env, data, *type, dims);
    t.array = Napi::Persistent(data);
    input_names_.push_back(spec->name.c_str());
    inputs_.push_back(std::move(t));
  }

  void AddOutput(Napi::Env env, const std::string& name, Napi::TypedArray into, const std::vector<int64_t>* dims) {
    const TensorSpec* spec = FindSpec(core_->outputs(), name);
    JS_GUARD(spec != nullptr, env, "run", "output name");
    output_names_.push_back(spec->name.c_str());
    OrtValue* value = nullptr;
    if (!into.IsEmpty()) {
      const ElementType* type = ElementTypeByOnnx(spec->type);
      JS_GUARD(type != nullptr, env, "run", "output type");
      value = WrapArray(env, into, *type, *dims);
      into_.emplace_back(Napi::Persistent(into));
    } else {
      into_.emplace_back();
    }
    outputs_.push_back(value);
  }

  void Execute() override {
    try {
      RunNow();
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }

  // The ORT call itself; throws OrtError. Runs on a pool thread, or on the JS thread for runSync.
  void RunNow() {
    ORT_CHECK(Ort().Run(core_->session(), nullptr, input_names_.data(), InputValues().data(), input_names_.size(),
                        output_names_.data(), output_names_.size(), outputs_.data()),
              "");
  }

  Napi::Array Results(Napi::Env env) {
    Napi::Array result = Napi::Array::New(env, outputs_.size());
    for (size_t i = 0; i < outputs_.size(); ++i) result.Set(i, OutputToJs(env, output_names_[i], outputs_[i], into_[i]));
    return result;
  }

  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(Results(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (const std::exception& e) {
      deferred_.Reject(Napi::Error::New(env, e.what()).Value());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  static const TensorSpec* FindSpec(const std::vector<TensorSpec>& specs, const std::string& name) {
    for (const auto& s : specs)
      if (s.name == name) return &s;
    return nullptr;
  }

  std::vector<const OrtValue*> InputValues() const {
    std::vector<const OrtValue*> v;
    for (const auto& t : inputs_) v.push_back(t.value);
    return v;
  }

  Napi::Promise::Deferred deferred_;
  std::shared_ptr<SessionCore> core_;
  std::vector<const char*> input_names_;
  std::vector<BorrowedTensor> inputs_;
  std::vector<const char*> output_names_;
  std::vector<OrtValue*> outputs_;
  std::vector<Napi::Reference<Napi::TypedArray>> into_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// JS class

void Session::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = DefineClass(env, "Session",
                                   {
                                       InstanceAccessor<&Session::Inputs>("inputs"),
                                       InstanceAccessor<&Session::Outputs>("outputs"),
                                       InstanceAccessor<&Session::Provider>("provider"),
                                       InstanceAccessor<&Session::ProviderNote>("providerNote"),
                                       InstanceMethod<&Session::Run>("run"),
                                       InstanceMethod<&Session::RunSync>("runSync"),
                                       InstanceMethod<&Session::Close>("close"),
                                   });
  // Node deletes the instance data when the environment goes away.
  env.SetInstanceData<SessionClass>(new SessionClass{Napi::Persistent(cls)});
  exports.Set("Session", cls);
}

Napi::Object Session::NewInstance(Napi::Env env, std::shared_ptr<SessionCore> core) {
  auto* holder = new std::shared_ptr<SessionCore>(std::move(core));
  Napi::External<std::shared_ptr<SessionCore>> ext = Napi::External<std::shared_ptr<SessionCore>>::New(
      env, holder, [](Napi::Env, std::shared_ptr<SessionCore>* h) { delete h; });
  return env.GetInstanceData<SessionClass>()->constructor.New({ext});
}

Session::Session(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Session>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(info.Env(), "Session objects come from openSession()");
  core_ = *info[0].As<Napi::External<std::shared_ptr<SessionCore>>>().Data();
}

std::shared_ptr<SessionCore> Session::CoreOf(Napi::Env env, const Napi::Value& value) {
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(env.GetInstanceData<SessionClass>()->constructor.Value())) return nullptr;
  return Session::Unwrap(value.As<Napi::Object>())->core_;
}

std::shared_ptr<SessionCore> Session::Live(Napi::Env env) const {
  if (!core_) throw Napi::Error::New(env, "session is closed");
  return core_;
}

Napi::Value Session::Inputs(const Napi::CallbackInfo& info) { return SpecsToJs(info.Env(), Live(info.Env())->inputs()); }
Napi::Value Session::Outputs(const Napi::CallbackInfo& info) { return SpecsToJs(info.Env(), Live(info.Env())->outputs()); }
Napi::Value Session::Provider(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), Live(info.Env())->provider()); }
Napi::Value Session::ProviderNote(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), Live(info.Env())->provider_note());
}

Napi::Value Session::Close(const Napi::CallbackInfo& info) {
  core_.reset();  // runs in flight keep their own reference
  return info.Env().Undefined();
}

// Builds a run from run(feeds: {name, data, dims}[], outputs: {name, data?, dims?}[]) arguments.
static RunWorker* PrepareRun(const Napi::CallbackInfo& info, std::shared_ptr<SessionCore> core) {
  Napi::Env env = info.Env();
  JS_GUARD(info[0].IsArray() && info[1].IsArray(), env, "run", "arguments");
  auto* worker = new RunWorker(env, core);
  try {
    Napi::Array feeds = info[0].As<Napi::Array>();
    for (uint32_t i = 0; i < feeds.Length(); ++i) {
      Napi::Value f = feeds.Get(i);
      JS_GUARD(f.IsObject(), env, "run", "feed");
      Napi::Value name = f.As<Napi::Object>().Get("name"), data = f.As<Napi::Object>().Get("data");
      JS_GUARD(name.IsString() && data.IsTypedArray(), env, "run", "feed");
      worker->AddInput(env, name.As<Napi::String>().Utf8Value(), data.As<Napi::TypedArray>(), ReadDims(env, f.As<Napi::Object>().Get("dims")));
    }
    Napi::Array outs = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < outs.Length(); ++i) {
      Napi::Value o = outs.Get(i);
      JS_GUARD(o.IsObject(), env, "run", "output request");
      Napi::Value name = o.As<Napi::Object>().Get("name"), data = o.As<Napi::Object>().Get("data");
      JS_GUARD(name.IsString() && (data.IsUndefined() || data.IsTypedArray()), env, "run", "output request");
      if (data.IsTypedArray()) {
        std::vector<int64_t> dims = ReadDims(env, o.As<Napi::Object>().Get("dims"));
        worker->AddOutput(env, name.As<Napi::String>().Utf8Value(), data.As<Napi::TypedArray>(), &dims);
      } else {
        worker->AddOutput(env, name.As<Napi::String>().Utf8Value(), Napi::TypedArray(), nullptr);
      }
    }
  } catch (...) {
    delete worker;
    throw;
  }
  return worker;
}

// run(feeds, outputs) → Promise<{name,type,dims,data}[]>, computed on a pool thread.
Napi::Value Session::Run(const Napi::CallbackInfo& info) {
  RunWorker* worker = PrepareRun(info, Live(info.Env()));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// runSync(feeds, outputs) → {name,type,dims,data}[], computed on the JS thread: no thread hop, but
// the event loop waits for the whole inference.
Napi::Value Session::RunSync(const Napi::CallbackInfo& info) {
  std::unique_ptr<RunWorker> worker(PrepareRun(info, Live(info.Env())));
  try {
    worker->RunNow();
  } catch (const OrtError& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
  return worker->Results(info.Env());
}

}  // namespace img2prompt

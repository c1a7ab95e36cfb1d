#include "session.h"

#include <algorithm>
#include <cstring>
#include <sstream>

#include "js_guard.h"
#include "ort_env.h"
#include "tensor_types.h"

namespace img2prompt {
namespace {

// Per-environment constructor of the JS Session class (worker threads each get their own).
struct SessionClass {
  Napi::FunctionReference constructor;
};

// Reads name, element type and shape of input/output `index`.
TensorSpec ReadSpec(OrtSession* session, size_t index, bool input, OrtAllocator* allocator) {
  const OrtApi& ort = Ort();
  TensorSpec spec;
  char* name = nullptr;
  ORT_CHECK(input ? ort.SessionGetInputName(session, index, allocator, &name)
                  : ort.SessionGetOutputName(session, index, allocator, &name), "");
  spec.name = name;
  ORT_CHECK(ort.AllocatorFree(allocator, name), "");

  OrtTypeInfo* type_info = nullptr;
  ORT_CHECK(input ? ort.SessionGetInputTypeInfo(session, index, &type_info)
                  : ort.SessionGetOutputTypeInfo(session, index, &type_info), "");
  const OrtTensorTypeAndShapeInfo* tensor_info = nullptr;
  OrtStatus* status = ort.CastTypeInfoToTensorInfo(type_info, &tensor_info);
  if (status == nullptr && tensor_info != nullptr) {
    size_t rank = 0;
    ORT_CHECK(ort.GetTensorElementType(tensor_info, &spec.type), "");
    ORT_CHECK(ort.GetDimensionsCount(tensor_info, &rank), "");
    spec.dims.resize(rank);
    std::vector<const char*> symbols(rank, nullptr);
    ORT_CHECK(ort.GetDimensions(tensor_info, spec.dims.data(), rank), "");
    ORT_CHECK(ort.GetSymbolicDimensions(tensor_info, symbols.data(), rank), "");
    for (const char* s : symbols) spec.symbols.emplace_back(s ? s : "");
  } else if (status != nullptr) {
    ort.ReleaseStatus(status);
  }
  ort.ReleaseTypeInfo(type_info);
  return spec;
}

Napi::Array SpecsToJs(Napi::Env env, const std::vector<TensorSpec>& specs) {
  Napi::Array out = Napi::Array::New(env, specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& s = specs[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", s.name);
    o.Set("type", ElementTypeName(s.type));
    Napi::Array dims = Napi::Array::New(env, s.dims.size());
    for (size_t d = 0; d < s.dims.size(); ++d) {
      if (s.dims[d] >= 0)
        dims.Set(d, Napi::Number::New(env, static_cast<double>(s.dims[d])));
      else
        dims.Set(d, Napi::String::New(env, s.symbols[d].empty() ? "?" : s.symbols[d]));
    }
    o.Set("dims", dims);
    out.Set(i, o);
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// SessionCore

SessionCore::SessionCore(const std::string& path, const void* bytes, size_t length, const OpenOptions& options) {
  bool want_cuda = std::find(options.providers.begin(), options.providers.end(), "cuda") != options.providers.end();
  if (want_cuda) {
    try {
      session_ = Create(path, bytes, length, options, true);
      provider_ = "cuda";
    } catch (const OrtError& e) {
      // CUDA was asked for but cannot be used here (no provider library, no device, ...): say why, use CPU.
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
  OrtSessionOptions* so = nullptr;
  ORT_CHECK(ort.CreateSessionOptions(&so), "");
  OrtSession* session = nullptr;
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
    if (bytes)
      ORT_CHECK(ort.CreateSessionFromArray(env, bytes, length, so, &session), "");
    else
      ORT_CHECK(ort.CreateSession(env, path.c_str(), so, &session), "");
  } catch (...) {
    ort.ReleaseSessionOptions(so);
    throw;
  }
  ort.ReleaseSessionOptions(so);
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

struct ViewOfArray {
  void* data;
  size_t bytes;
  napi_typedarray_type type;
};

ViewOfArray View(const Napi::TypedArray& ta) {
  Napi::ArrayBuffer buffer = ta.ArrayBuffer();
  return {static_cast<uint8_t*>(buffer.Data()) + ta.ByteOffset(), ta.ByteLength(), ta.TypedArrayType()};
}

std::vector<int64_t> ReadDims(Napi::Env env, const Napi::Value& v) {
  JS_GUARD(v.IsArray(), env, "run", "dims");
  Napi::Array arr = v.As<Napi::Array>();
  std::vector<int64_t> dims(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) dims[i] = GuardedInteger(env, arr.Get(i), "run", "dims", 0, INT64_C(9007199254740991));
  return dims;
}

// Wraps `ta` as an ORT tensor of `type` and `dims`, after checking it fits them exactly: ORT reads
// (or, for an output, writes) exactly that many bytes of it.
OrtValue* WrapArray(Napi::Env env, const Napi::TypedArray& ta, const ElementType& type, const std::vector<int64_t>& dims) {
  ViewOfArray view = View(ta);
  JS_GUARD(view.type == type.js, env, "run", "array kind");
  size_t count = 1;
  for (int64_t d : dims) {
    JS_GUARD(d == 0 || count <= SIZE_MAX / type.bytes / static_cast<size_t>(d), env, "run", "dims");
    count *= static_cast<size_t>(d);
  }
  JS_GUARD(count * type.bytes == view.bytes, env, "run", "array length");
  static OrtMemoryInfo* cpu = [] {
    OrtMemoryInfo* m = nullptr;
    ORT_CHECK(Ort().CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &m), "CPU memory info");
    return m;
  }();
  OrtValue* value = nullptr;
  // A zero-element tensor still needs a non-null pointer.
  static uint8_t empty[8];
  void* data = view.bytes ? view.data : empty;
  ORT_CHECK(Ort().CreateTensorWithDataAsOrtValue(cpu, data, view.bytes, dims.data(), dims.size(), type.onnx, &value), "");
  return value;
}

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
    for (size_t i = 0; i < outputs_.size(); ++i) result.Set(i, OutputToJs(env, i));
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

  // The caller's own array when it gave one; else a TypedArray over ORT's output memory, which
  // is released when JS collects the array (no copy).
  Napi::Object OutputToJs(Napi::Env env, size_t i) {
    const OrtApi& ort = Ort();
    OrtValue* value = outputs_[i];
    OrtTensorTypeAndShapeInfo* info = nullptr;
    ORT_CHECK(ort.GetTensorTypeAndShape(value, &info), "");
    ONNXTensorElementDataType onnx_type;
    size_t rank = 0, count = 0;
    ORT_CHECK(ort.GetTensorElementType(info, &onnx_type), "");
    ORT_CHECK(ort.GetDimensionsCount(info, &rank), "");
    std::vector<int64_t> dims(rank);
    ORT_CHECK(ort.GetDimensions(info, dims.data(), rank), "");
    ORT_CHECK(ort.GetTensorShapeElementCount(info, &count), "");
    ort.ReleaseTensorTypeAndShapeInfo(info);
    const ElementType* type = ElementTypeByOnnx(onnx_type);
    if (type == nullptr)
      throw Napi::TypeError::New(env, std::string("output '") + output_names_[i] + "' has unsupported type " + ElementTypeName(onnx_type));

    Napi::Object out = Napi::Object::New(env);
    out.Set("name", output_names_[i]);
    out.Set("type", type->name);
    Napi::Array js_dims = Napi::Array::New(env, rank);
    for (size_t d = 0; d < rank; ++d) js_dims.Set(d, Napi::Number::New(env, static_cast<double>(dims[d])));
    out.Set("dims", js_dims);

    if (!into_[i].IsEmpty()) {
      out.Set("data", into_[i].Value());
      return out;
    }
    void* data = nullptr;
    ORT_CHECK(ort.GetTensorMutableData(value, &data), "");
    size_t bytes = count * type->bytes;
    Napi::ArrayBuffer buffer;
    if (bytes == 0) {
      buffer = Napi::ArrayBuffer::New(env, 0);
    } else {
      buffer = Napi::ArrayBuffer::New(env, data, bytes, [](Napi::Env, void*, OrtValue* v) { Ort().ReleaseValue(v); }, value);
      outputs_[i] = nullptr;  // now owned by the ArrayBuffer
    }
    napi_value typed = nullptr;
    NAPI_THROW_IF_FAILED(env, napi_create_typedarray(env, type->js, count, buffer, 0, &typed), out);
    out.Set("data", Napi::Value(env, typed));
    return out;
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

#include "session.h"

#include <algorithm>
#include <cstring>
#include <sstream>

#include "ort_env.h"
#include "tensor_types.h"

namespace img2prompt {
namespace {

// Per-environment constructor of the JS Session class (worker threads each get their own).
struct SessionClass {
  Napi::FunctionReference constructor;
};

std::string Join(const std::vector<int64_t>& dims) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < dims.size(); ++i) out << (i ? "," : "") << dims[i];
  out << ']';
  return out.str();
}

// Reads name, element type and shape of input/output `index`.
TensorSpec ReadSpec(OrtSession* session, size_t index, bool input, OrtAllocator* allocator, const std::string& label) {
  const OrtApi& ort = Ort();
  TensorSpec spec;
  char* name = nullptr;
  ORT_CHECK(input ? ort.SessionGetInputName(session, index, allocator, &name)
                  : ort.SessionGetOutputName(session, index, allocator, &name),
            label);
  spec.name = name;
  ORT_CHECK(ort.AllocatorFree(allocator, name), label);

  OrtTypeInfo* type_info = nullptr;
  ORT_CHECK(input ? ort.SessionGetInputTypeInfo(session, index, &type_info)
                  : ort.SessionGetOutputTypeInfo(session, index, &type_info),
            label);
  const OrtTensorTypeAndShapeInfo* tensor_info = nullptr;
  OrtStatus* status = ort.CastTypeInfoToTensorInfo(type_info, &tensor_info);
  if (status == nullptr && tensor_info != nullptr) {
    size_t rank = 0;
    ORT_CHECK(ort.GetTensorElementType(tensor_info, &spec.type), label);
    ORT_CHECK(ort.GetDimensionsCount(tensor_info, &rank), label);
    spec.dims.resize(rank);
    std::vector<const char*> symbols(rank, nullptr);
    ORT_CHECK(ort.GetDimensions(tensor_info, spec.dims.data(), rank), label);
    ORT_CHECK(ort.GetSymbolicDimensions(tensor_info, symbols.data(), rank), label);
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

SessionCore::SessionCore(const std::string& path, const void* bytes, size_t length, const OpenOptions& options)
    : label_(bytes ? "<model buffer of " + std::to_string(length) + " bytes>" : path) {
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
  ORT_CHECK(ort.CreateSessionOptions(&so), label_);
  OrtSession* session = nullptr;
  try {
    ORT_CHECK(ort.SetIntraOpNumThreads(so, options.intra_op_threads), label_);
    ORT_CHECK(ort.SetInterOpNumThreads(so, 1), label_);
    ORT_CHECK(ort.SetSessionExecutionMode(so, ORT_SEQUENTIAL), label_);
    ORT_CHECK(ort.SetSessionGraphOptimizationLevel(so, options.optimization), label_);
    if (!options.spin_wait) ORT_CHECK(ort.AddSessionConfigEntry(so, "session.intra_op.allow_spinning", "0"), label_);
    if (with_cuda) {
      OrtCUDAProviderOptionsV2* cuda = nullptr;
      ORT_CHECK(ort.CreateCUDAProviderOptions(&cuda), "CUDA provider options");
      OrtStatus* st = ort.SessionOptionsAppendExecutionProvider_CUDA_V2(so, cuda);
      ort.ReleaseCUDAProviderOptions(cuda);
      ORT_CHECK(st, "CUDA provider");
    }
    if (bytes)
      ORT_CHECK(ort.CreateSessionFromArray(env, bytes, length, so, &session), label_);
    else
      ORT_CHECK(ort.CreateSession(env, path.c_str(), so, &session), label_);
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
  ORT_CHECK(ort.GetAllocatorWithDefaultOptions(&allocator), label_);
  size_t n_in = 0, n_out = 0;
  ORT_CHECK(ort.SessionGetInputCount(session_, &n_in), label_);
  ORT_CHECK(ort.SessionGetOutputCount(session_, &n_out), label_);
  for (size_t i = 0; i < n_in; ++i) inputs_.push_back(ReadSpec(session_, i, true, allocator, label_));
  for (size_t i = 0; i < n_out; ++i) outputs_.push_back(ReadSpec(session_, i, false, allocator, label_));
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

OpenOptions ParseOpenOptions(Napi::Env env, const Napi::Value& value) {
  OpenOptions o;
  if (!value.IsObject()) return o;
  Napi::Object obj = value.As<Napi::Object>();
  if (obj.Has("providers") && obj.Get("providers").IsArray()) {
    Napi::Array arr = obj.Get("providers").As<Napi::Array>();
    o.providers.clear();
    for (uint32_t i = 0; i < arr.Length(); ++i) o.providers.push_back(arr.Get(i).ToString().Utf8Value());
  }
  if (obj.Has("intraOpThreads") && obj.Get("intraOpThreads").IsNumber())
    o.intra_op_threads = obj.Get("intraOpThreads").As<Napi::Number>().Int32Value();
  if (obj.Has("spinWait") && obj.Get("spinWait").IsBoolean()) o.spin_wait = obj.Get("spinWait").As<Napi::Boolean>().Value();
  if (obj.Has("optimization") && obj.Get("optimization").IsString()) {
    std::string level = obj.Get("optimization").As<Napi::String>().Utf8Value();
    if (level == "disabled") o.optimization = ORT_DISABLE_ALL;
    else if (level == "basic") o.optimization = ORT_ENABLE_BASIC;
    else if (level == "extended") o.optimization = ORT_ENABLE_EXTENDED;
    else if (level == "all") o.optimization = ORT_ENABLE_ALL;
    else throw Napi::TypeError::New(env, "optimization must be 'disabled', 'basic', 'extended' or 'all'");
  }
  return o;
}

}  // namespace

Napi::Value OpenSession(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !(info[0].IsString() || info[0].IsTypedArray()))
    throw Napi::TypeError::New(env, "openSession(model, options): model must be a path or a Uint8Array");
  OpenOptions options = ParseOpenOptions(env, info.Length() > 1 ? info[1] : env.Undefined());
  std::string path;
  Napi::Uint8Array buffer;
  if (info[0].IsString()) {
    path = info[0].As<Napi::String>().Utf8Value();
  } else {
    Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
    if (ta.TypedArrayType() != napi_uint8_array) throw Napi::TypeError::New(env, "model buffer must be a Uint8Array");
    buffer = ta.As<Napi::Uint8Array>();
  }
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

std::vector<int64_t> ReadDims(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, what + ": dims must be an array");
  Napi::Array arr = v.As<Napi::Array>();
  std::vector<int64_t> dims(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value d = arr.Get(i);
    if (!d.IsNumber()) throw Napi::TypeError::New(env, what + ": dims must be numbers");
    double x = d.As<Napi::Number>().DoubleValue();
    if (!(x >= 0) || x != static_cast<double>(static_cast<int64_t>(x)))
      throw Napi::TypeError::New(env, what + ": dims must be non-negative integers");
    dims[i] = static_cast<int64_t>(x);
  }
  return dims;
}

// Wraps `ta` as an ORT tensor of `type` and `dims`, after checking it fits them exactly.
OrtValue* WrapArray(Napi::Env env, const Napi::TypedArray& ta, const ElementType& type, const std::vector<int64_t>& dims,
                    const std::string& what) {
  ViewOfArray view = View(ta);
  if (view.type != type.js)
    throw Napi::TypeError::New(env, what + ": a " + type.name + " tensor needs a different TypedArray kind");
  size_t count = 1;
  for (int64_t d : dims) count *= static_cast<size_t>(d);
  if (count * type.bytes != view.bytes)
    throw Napi::RangeError::New(env, what + ": dims " + Join(dims) + " need " + std::to_string(count) +
                                         " elements, the array has " + std::to_string(view.bytes / type.bytes));
  static OrtMemoryInfo* cpu = [] {
    OrtMemoryInfo* m = nullptr;
    ORT_CHECK(Ort().CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &m), "CPU memory info");
    return m;
  }();
  OrtValue* value = nullptr;
  // A zero-element tensor still needs a non-null pointer.
  static uint8_t empty[8];
  void* data = view.bytes ? view.data : empty;
  ORT_CHECK(Ort().CreateTensorWithDataAsOrtValue(cpu, data, view.bytes, dims.data(), dims.size(), type.onnx, &value),
            what);
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
    if (spec == nullptr) throw Napi::Error::New(env, core_->label() + ": model has no input '" + name + "'");
    std::string what = core_->label() + ": input '" + name + "'";
    const ElementType* type = ElementTypeByOnnx(spec->type);
    if (type == nullptr) throw Napi::TypeError::New(env, what + " has unsupported type " + ElementTypeName(spec->type));
    CheckShape(env, *spec, dims, what);
    BorrowedTensor t;
    t.value = WrapArray(env, data, *type, dims, what);
    t.array = Napi::Persistent(data);
    input_names_.push_back(spec->name.c_str());
    inputs_.push_back(std::move(t));
  }

  void AddOutput(Napi::Env env, const std::string& name, Napi::TypedArray into, const std::vector<int64_t>* dims) {
    const TensorSpec* spec = FindSpec(core_->outputs(), name);
    if (spec == nullptr) throw Napi::Error::New(env, core_->label() + ": model has no output '" + name + "'");
    output_names_.push_back(spec->name.c_str());
    OrtValue* value = nullptr;
    if (!into.IsEmpty()) {
      std::string what = core_->label() + ": output buffer for '" + name + "'";
      const ElementType* type = ElementTypeByOnnx(spec->type);
      if (type == nullptr) throw Napi::TypeError::New(env, what + ": unsupported type " + ElementTypeName(spec->type));
      CheckShape(env, *spec, *dims, what);
      value = WrapArray(env, into, *type, *dims, what);
      into_.emplace_back(Napi::Persistent(into));
    } else {
      into_.emplace_back();
    }
    outputs_.push_back(value);
  }

  void CheckAllInputsGiven(Napi::Env env) {
    for (const TensorSpec& s : core_->inputs()) {
      bool given = std::any_of(input_names_.begin(), input_names_.end(), [&](const char* n) { return s.name == n; });
      if (!given) throw Napi::Error::New(env, core_->label() + ": missing input '" + s.name + "'");
    }
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
              core_->label());
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

  static void CheckShape(Napi::Env env, const TensorSpec& spec, const std::vector<int64_t>& dims, const std::string& what) {
    if (!spec.dims.empty() || dims.empty()) {
      if (dims.size() != spec.dims.size())
        throw Napi::RangeError::New(env, what + ": expected rank " + std::to_string(spec.dims.size()) + " " +
                                             Join(spec.dims) + ", got dims " + Join(dims));
      for (size_t i = 0; i < dims.size(); ++i)
        if (spec.dims[i] >= 0 && spec.dims[i] != dims[i])
          throw Napi::RangeError::New(env, what + ": dimension " + std::to_string(i) + " must be " +
                                               std::to_string(spec.dims[i]) + ", got dims " + Join(dims));
    }
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
    ORT_CHECK(ort.GetTensorTypeAndShape(value, &info), core_->label());
    ONNXTensorElementDataType onnx_type;
    size_t rank = 0, count = 0;
    ORT_CHECK(ort.GetTensorElementType(info, &onnx_type), core_->label());
    ORT_CHECK(ort.GetDimensionsCount(info, &rank), core_->label());
    std::vector<int64_t> dims(rank);
    ORT_CHECK(ort.GetDimensions(info, dims.data(), rank), core_->label());
    ORT_CHECK(ort.GetTensorShapeElementCount(info, &count), core_->label());
    ort.ReleaseTensorTypeAndShapeInfo(info);
    const ElementType* type = ElementTypeByOnnx(onnx_type);
    if (type == nullptr)
      throw Napi::TypeError::New(env, core_->label() + ": output '" + output_names_[i] + "' has unsupported type " +
                                          ElementTypeName(onnx_type));

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
    ORT_CHECK(ort.GetTensorMutableData(value, &data), core_->label());
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
                                       InstanceAccessor<&Session::Label>("label"),
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
Napi::Value Session::Label(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), Live(info.Env())->label()); }

Napi::Value Session::Close(const Napi::CallbackInfo& info) {
  core_.reset();  // runs in flight keep their own reference
  return info.Env().Undefined();
}

// Builds a run from run(feeds: {name, data, dims}[], outputs: {name, data?, dims?}[]) arguments.
static RunWorker* PrepareRun(const Napi::CallbackInfo& info, std::shared_ptr<SessionCore> core) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsArray())
    throw Napi::TypeError::New(env, "run(feeds, outputs): both must be arrays");
  auto* worker = new RunWorker(env, core);
  try {
    Napi::Array feeds = info[0].As<Napi::Array>();
    for (uint32_t i = 0; i < feeds.Length(); ++i) {
      Napi::Object f = feeds.Get(i).As<Napi::Object>();
      std::string name = f.Get("name").ToString().Utf8Value();
      Napi::Value data = f.Get("data");
      if (!data.IsTypedArray()) throw Napi::TypeError::New(env, core->label() + ": input '" + name + "': data must be a TypedArray");
      worker->AddInput(env, name, data.As<Napi::TypedArray>(), ReadDims(env, f.Get("dims"), core->label() + ": input '" + name + "'"));
    }
    worker->CheckAllInputsGiven(env);
    Napi::Array outs = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < outs.Length(); ++i) {
      Napi::Object o = outs.Get(i).As<Napi::Object>();
      std::string name = o.Get("name").ToString().Utf8Value();
      Napi::Value data = o.Get("data");
      if (data.IsTypedArray()) {
        std::vector<int64_t> dims = ReadDims(env, o.Get("dims"), core->label() + ": output '" + name + "'");
        worker->AddOutput(env, name, data.As<Napi::TypedArray>(), &dims);
      } else {
        worker->AddOutput(env, name, Napi::TypedArray(), nullptr);
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

#include "io_binding.h"

#include <onnxruntime_c_api.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "js_guard.h"
#include "ort_env.h"
#include "session.h"
#include "tensor_io.h"

namespace img2prompt {
namespace {

struct ValueRelease {
  void operator()(OrtValue* v) const { Ort().ReleaseValue(v); }
};
using ValuePtr = std::unique_ptr<OrtValue, ValueRelease>;
using ArrayRef = std::unique_ptr<Napi::Reference<Napi::TypedArray>>;

// A tensor over a JS array's memory, with the reference that keeps the array alive while ORT may read
// or write it. References are only ever destroyed on the JS thread.
struct Lent {
  ValuePtr value;
  ArrayRef array;
};

// The ORT binding and what it holds, shared by the JS object and the runs in flight. One run at a time
// binds and runs (the mutex): a binding is one set of names → values.
class BindingCore {
 public:
  explicit BindingCore(std::shared_ptr<SessionCore> session) : session_(std::move(session)) {
    ORT_CHECK(Ort().CreateIoBinding(session_->session(), &binding_), "");
    OrtStatus* status = Ort().CreateCpuMemoryInfo(OrtDeviceAllocator, OrtMemTypeDefault, &cpu_);
    if (status != nullptr) {
      Ort().ReleaseIoBinding(binding_);
      ThrowOnError(status, "");
    }
  }
  ~BindingCore() {
    Ort().ReleaseIoBinding(binding_);  // before the values it holds
    Ort().ReleaseMemoryInfo(cpu_);
  }
  BindingCore(const BindingCore&) = delete;
  BindingCore& operator=(const BindingCore&) = delete;

  const SessionCore& session() const { return *session_; }

  // Binds each feed; an input bound before under the same name is replaced, and its lent array moves to
  // `displaced` (the caller drops it on the JS thread). Caller holds mutex().
  void BindInputs(std::vector<std::pair<std::string, Lent>>& feeds, std::vector<Lent>& displaced) {
    for (auto& [name, lent] : feeds) {
      ORT_CHECK(Ort().BindInput(binding_, name.c_str(), lent.value.get()), "");
      auto held = inputs_.find(name);
      if (held != inputs_.end()) {
        displaced.push_back(std::move(held->second));
        held->second = std::move(lent);
      } else {
        inputs_.emplace(name, std::move(lent));
      }
    }
  }

  // Binds the outputs (into the caller's tensor, or to CPU memory ORT allocates), runs, and returns the
  // ORT-allocated outputs in `outputs` order (nullptr where the caller gave a tensor). Caller holds mutex().
  std::vector<ValuePtr> Run(const std::vector<std::string>& names, const std::vector<OrtValue*>& into) {
    struct Unbind {
      OrtIoBinding* b;
      ~Unbind() { Ort().ClearBoundOutputs(b); }  // no output binding outlives its run
    } unbind{binding_};
    for (size_t i = 0; i < names.size(); ++i) {
      ORT_CHECK(into[i] ? Ort().BindOutput(binding_, names[i].c_str(), into[i])
                        : Ort().BindOutputToDevice(binding_, names[i].c_str(), cpu_), "");
    }
    ORT_CHECK(Ort().RunWithBinding(session_->session(), nullptr, binding_), "");
    std::vector<ValuePtr> out(names.size());
    OrtAllocator* allocator = nullptr;
    ORT_CHECK(Ort().GetAllocatorWithDefaultOptions(&allocator), "");
    OrtValue** values = nullptr;
    size_t count = 0;
    ORT_CHECK(Ort().GetBoundOutputValues(binding_, allocator, &values, &count), "");
    for (size_t i = 0; i < count; ++i) {
      ValuePtr v(values[i]);
      if (i < out.size() && into[i] == nullptr) out[i] = std::move(v);  // else: a second handle on the caller's tensor
    }
    if (values != nullptr) allocator->Free(allocator, values);
    return out;
  }

  std::mutex& mutex() { return mutex_; }

 private:
  std::shared_ptr<SessionCore> session_;
  OrtIoBinding* binding_ = nullptr;
  OrtMemoryInfo* cpu_ = nullptr;
  std::map<std::string, Lent> inputs_;
  std::mutex mutex_;
};

const TensorSpec* FindSpec(const std::vector<TensorSpec>& specs, const std::string& name) {
  for (const auto& s : specs)
    if (s.name == name) return &s;
  return nullptr;
}

// A tensor of spec `name`'s type over `data`, lent with its reference.
Lent LendArray(Napi::Env env, const std::vector<TensorSpec>& specs, const std::string& name, const Napi::TypedArray& data,
               const std::vector<int64_t>& dims, const char* what) {
  const TensorSpec* spec = FindSpec(specs, name);
  JS_GUARD(spec != nullptr, env, "ioBinding", std::string(what) + " name");
  const ElementType* type = ElementTypeByOnnx(spec->type);
  JS_GUARD(type != nullptr, env, "ioBinding", std::string(what) + " type");
  Lent lent;
  lent.value.reset(WrapArray(env, data, *type, dims));
  lent.array = std::make_unique<Napi::Reference<Napi::TypedArray>>(Napi::Persistent(data));
  return lent;
}

// Binds feeds and, for run(), runs with outputs, off the JS thread.
class BindingWorker : public Napi::AsyncWorker {
 public:
  BindingWorker(Napi::Env env, std::shared_ptr<BindingCore> core, bool run)
      : Napi::AsyncWorker(env, run ? "img2prompt.runWithBinding" : "img2prompt.bindInputs"),
        deferred_(Napi::Promise::Deferred::New(env)),
        core_(std::move(core)),
        run_(run) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }

  void ReadFeeds(Napi::Env env, const Napi::Value& v) {
    JS_GUARD(v.IsArray(), env, "ioBinding", "feeds");
    Napi::Array feeds = v.As<Napi::Array>();
    for (uint32_t i = 0; i < feeds.Length(); ++i) {
      Napi::Value f = feeds.Get(i);
      JS_GUARD(f.IsObject(), env, "ioBinding", "feed");
      Napi::Object o = f.As<Napi::Object>();
      Napi::Value name = o.Get("name"), data = o.Get("data");
      JS_GUARD(name.IsString() && data.IsTypedArray(), env, "ioBinding", "feed");
      std::string n = name.As<Napi::String>().Utf8Value();
      feeds_.emplace_back(n, LendArray(env, core_->session().inputs(), n, data.As<Napi::TypedArray>(), ReadDims(env, o.Get("dims")), "input"));
    }
  }

  void ReadOutputs(Napi::Env env, const Napi::Value& v) {
    JS_GUARD(v.IsArray(), env, "ioBinding", "outputs");
    Napi::Array outs = v.As<Napi::Array>();
    JS_GUARD(outs.Length() > 0, env, "ioBinding", "outputs");
    for (uint32_t i = 0; i < outs.Length(); ++i) {
      Napi::Value r = outs.Get(i);
      JS_GUARD(r.IsObject(), env, "ioBinding", "output request");
      Napi::Object o = r.As<Napi::Object>();
      Napi::Value name = o.Get("name"), data = o.Get("data");
      JS_GUARD(name.IsString() && (data.IsUndefined() || data.IsTypedArray()), env, "ioBinding", "output request");
      std::string n = name.As<Napi::String>().Utf8Value();
      JS_GUARD(FindSpec(core_->session().outputs(), n) != nullptr, env, "ioBinding", "output name");
      names_.push_back(n);
      if (data.IsTypedArray()) {
        into_.push_back(LendArray(env, core_->session().outputs(), n, data.As<Napi::TypedArray>(), ReadDims(env, o.Get("dims")), "output"));
      } else {
        into_.emplace_back();
      }
    }
  }

  void Execute() override {
    try {
      std::lock_guard<std::mutex> lock(core_->mutex());
      core_->BindInputs(feeds_, displaced_);
      if (!run_) return;
      std::vector<OrtValue*> into;
      for (const Lent& l : into_) into.push_back(l.value.get());
      results_ = core_->Run(names_, into);
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (!run_) {
      deferred_.Resolve(env.Undefined());
      return;
    }
    try {
      Napi::Array result = Napi::Array::New(env, names_.size());
      for (size_t i = 0; i < names_.size(); ++i) {
        OrtValue* value = results_[i] ? results_[i].get() : into_[i].value.get();
        Napi::Reference<Napi::TypedArray> none;
        Napi::Object o = OutputToJs(env, names_[i].c_str(), value, into_[i].array ? *into_[i].array : none);
        if (results_[i] && value == nullptr) (void)results_[i].release();  // the JS array owns it now
        result.Set(i, o);
      }
      deferred_.Resolve(result);
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (const std::exception& e) {
      deferred_.Reject(Napi::Error::New(env, e.what()).Value());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<BindingCore> core_;
  bool run_;
  std::vector<std::pair<std::string, Lent>> feeds_;  // moved into the binding by Execute
  std::vector<Lent> displaced_;                        // inputs they replaced, released here on the JS thread
  std::vector<std::string> names_;
  std::vector<Lent> into_;
  std::vector<ValuePtr> results_;
};

class IoBinding : public Napi::ObjectWrap<IoBinding> {
 public:
  // The class's constructor, kept until the environment goes away (the addon's one instance-data slot
  // belongs to Session).
  static Napi::FunctionReference* Define(Napi::Env env) {
    Napi::Function cls = DefineClass(env, "IoBinding",
                                     {
                                         InstanceMethod<&IoBinding::BindInputs>("bindInputs"),
                                         InstanceMethod<&IoBinding::Run>("run"),
                                         InstanceMethod<&IoBinding::Close>("close"),
                                     });
    auto* constructor = new Napi::FunctionReference(Napi::Persistent(cls));
    env.AddCleanupHook([constructor] { delete constructor; });
    return constructor;
  }

  explicit IoBinding(const Napi::CallbackInfo& info) : Napi::ObjectWrap<IoBinding>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "IoBinding objects come from createIoBinding()");
    core_ = *info[0].As<Napi::External<std::shared_ptr<BindingCore>>>().Data();
  }

  static Napi::Object NewInstance(Napi::Env env, const Napi::FunctionReference& constructor, std::shared_ptr<BindingCore> core) {
    auto* holder = new std::shared_ptr<BindingCore>(std::move(core));
    auto ext = Napi::External<std::shared_ptr<BindingCore>>::New(env, holder, [](Napi::Env, std::shared_ptr<BindingCore>* h) { delete h; });
    return constructor.New({ext});
  }

 private:
  std::shared_ptr<BindingCore> Live(Napi::Env env) const {
    if (!core_) throw Napi::Error::New(env, "binding is closed");
    return core_;
  }

  // bindInputs(feeds) → Promise<void>: the inputs stay bound for every later run.
  Napi::Value BindInputs(const Napi::CallbackInfo& info) {
    auto worker = std::make_unique<BindingWorker>(info.Env(), Live(info.Env()), false);
    worker->ReadFeeds(info.Env(), info[0]);
    Napi::Promise promise = worker->Promise();
    worker.release()->Queue();
    return promise;
  }

  // run(feeds, outputs) → Promise<{name,type,dims,data}[]>: binds `feeds` (they stay bound), runs.
  Napi::Value Run(const Napi::CallbackInfo& info) {
    auto worker = std::make_unique<BindingWorker>(info.Env(), Live(info.Env()), true);
    worker->ReadFeeds(info.Env(), info[0]);
    worker->ReadOutputs(info.Env(), info[1]);
    Napi::Promise promise = worker->Promise();
    worker.release()->Queue();
    return promise;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    core_.reset();  // runs in flight keep their own reference
    return info.Env().Undefined();
  }

  std::shared_ptr<BindingCore> core_;
};

// createIoBinding(session) → IoBinding over that open session.
Napi::Value CreateIoBinding(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<SessionCore> session = Session::CoreOf(env, info[0]);
  JS_GUARD(session != nullptr, env, "createIoBinding", "session");
  try {
    auto* constructor = static_cast<Napi::FunctionReference*>(info.Data());
    return IoBinding::NewInstance(env, *constructor, std::make_shared<BindingCore>(std::move(session)));
  } catch (const OrtError& e) {
    throw Napi::Error::New(env, e.what());
  }
}

}  // namespace

void RegisterIoBinding(Napi::Env env, Napi::Object exports) {
  exports.Set("createIoBinding", Napi::Function::New(env, CreateIoBinding, "createIoBinding", IoBinding::Define(env)));
}

}  // namespace img2prompt

#include "tensor_io.h"

#include <cstdint>
#include <string>
#include <vector>

#include "js_guard.h"
#include "ort_env.h"

namespace img2prompt {

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

namespace {

struct ViewOfArray {
  void* data;
  size_t bytes;
  napi_typedarray_type type;
};

ViewOfArray View(const Napi::TypedArray& ta) {
  Napi::ArrayBuffer buffer = ta.ArrayBuffer();
  return {static_cast<uint8_t*>(buffer.Data()) + ta.ByteOffset(), ta.ByteLength(), ta.TypedArrayType()};
}

}  // namespace

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

Napi::Object OutputToJs(Napi::Env env, const char* name, OrtValue*& value, const Napi::Reference<Napi::TypedArray>& into) {
  const OrtApi& ort = Ort();
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
    throw Napi::TypeError::New(env, std::string("output '") + name + "' has unsupported type " + ElementTypeName(onnx_type));

  Napi::Object out = Napi::Object::New(env);
  out.Set("name", name);
  out.Set("type", type->name);
  Napi::Array js_dims = Napi::Array::New(env, rank);
  for (size_t d = 0; d < rank; ++d) js_dims.Set(d, Napi::Number::New(env, static_cast<double>(dims[d])));
  out.Set("dims", js_dims);

  if (!into.IsEmpty()) {
    out.Set("data", into.Value());
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
    value = nullptr;  // now owned by the ArrayBuffer
  }
  napi_value typed = nullptr;
  NAPI_THROW_IF_FAILED(env, napi_create_typedarray(env, type->js, count, buffer, 0, &typed), out);
  out.Set("data", Napi::Value(env, typed));
  return out;
}

}  // namespace img2prompt

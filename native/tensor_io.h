// Tensors across the JS boundary (the part of a session onnxruntime-node keeps in tensor_helper.cc):
// the model's signature as JS sees it, JS TypedArrays lent to ORT as tensors without a copy, and ORT's
// outputs handed to JS without a copy.
#pragma once
#include <napi.h>
#include <onnxruntime_c_api.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tensor_types.h"

namespace img2prompt {

struct TensorSpec {
  std::string name;
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  std::vector<int64_t> dims;         // -1 where the dimension is not fixed
  std::vector<std::string> symbols;  // symbolic name per dimension, "" when none
};

// Name, element type and shape of input (or output) `index` of `session`. Throws OrtError.
TensorSpec ReadSpec(OrtSession* session, size_t index, bool input, OrtAllocator* allocator);

// [{ name, type, dims }], a free dimension given by its symbolic name (or '?').
Napi::Array SpecsToJs(Napi::Env env, const std::vector<TensorSpec>& specs);

// A JS array of non-negative integers.
std::vector<int64_t> ReadDims(Napi::Env env, const Napi::Value& v);

// An ORT tensor of `type` and `dims` over `ta`'s memory (no copy); the caller keeps `ta` alive while
// ORT may use it and releases the value.
OrtValue* WrapArray(Napi::Env env, const Napi::TypedArray& ta, const ElementType& type, const std::vector<int64_t>& dims);

// { name, type, dims, data } for the output `value`: `into`'s array when the caller gave one, else a
// TypedArray over ORT's own output memory (no copy) that takes `value` over (it is set to nullptr) and
// releases it when JS collects the array.
Napi::Object OutputToJs(Napi::Env env, const char* name, OrtValue*& value, const Napi::Reference<Napi::TypedArray>& into);

}  // namespace img2prompt

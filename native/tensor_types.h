// Mapping between ONNX element types, the names the JS API uses and JS TypedArray kinds.
#pragma once
#include <napi.h>
#include <onnxruntime_c_api.h>

#include <cstddef>
#include <string>

namespace img2prompt {

struct ElementType {
  ONNXTensorElementDataType onnx;
  const char* name;          // 'float32', 'int64', ...
  size_t bytes;              // size of one element
  napi_typedarray_type js;   // TypedArray that carries it
};

// Element types the engine exchanges with JS; nullptr when unsupported.
const ElementType* ElementTypeByOnnx(ONNXTensorElementDataType type);
const ElementType* ElementTypeByName(const std::string& name);

// 'float32' etc, or 'onnx-type-<n>' for types the engine does not exchange.
std::string ElementTypeName(ONNXTensorElementDataType type);

}  // namespace img2prompt

#include "tensor_types.h"

namespace img2prompt {
namespace {

// bool travels as Uint8Array (one byte per element, as ORT stores it).
const ElementType kTypes[] = {
    {ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, "float32", 4, napi_float32_array},
    {ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, "float16", 2, napi_uint16_array},
    {ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE, "float64", 8, napi_float64_array},
    {ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, "int64", 8, napi_bigint64_array},
    {ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, "int32", 4, napi_int32_array},
    {ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8, "int8", 1, napi_int8_array},
    {ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, "uint8", 1, napi_uint8_array},
    {ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL, "bool", 1, napi_uint8_array},
};

}  // namespace

const ElementType* ElementTypeByOnnx(ONNXTensorElementDataType type) {
  for (const auto& t : kTypes)
    if (t.onnx == type) return &t;
  return nullptr;
}

const ElementType* ElementTypeByName(const std::string& name) {
  for (const auto& t : kTypes)
    if (name == t.name) return &t;
  return nullptr;
}

std::string ElementTypeName(ONNXTensorElementDataType type) {
  const ElementType* t = ElementTypeByOnnx(type);
  return t ? t->name : "onnx-type-" + std::to_string(static_cast<int>(type));
}

}  // namespace img2prompt

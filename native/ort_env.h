// Process-wide ONNX Runtime handles and the conversion of OrtStatus into C++ exceptions.
#pragma once
#include <onnxruntime_c_api.h>

#include <stdexcept>
#include <string>

namespace img2prompt {

// The OrtApi table of the library the addon was linked against (ORT_API_VERSION of the headers;
// the runtime library may be newer, which the C API allows).
const OrtApi& Ort();

// The single OrtEnv of the process, created on first use.
OrtEnv* OrtEnvironment();

// Version string of the loaded ORT library.
std::string OrtVersion();

// An ORT failure; `what()` is ORT's own message, with the context the caller adds.
class OrtError : public std::runtime_error {
 public:
  explicit OrtError(const std::string& message) : std::runtime_error(message) {}
};

// Throws OrtError (and releases the status) when `status` is not null.
void ThrowOnError(OrtStatus* status, const std::string& context);

}  // namespace img2prompt

#define ORT_CHECK(expr, context) ::img2prompt::ThrowOnError((expr), (context))

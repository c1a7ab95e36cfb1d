#include "ort_env.h"

#include <mutex>

namespace img2prompt {

const OrtApi& Ort() {
  static const OrtApi* api = [] {
    const OrtApi* a = OrtGetApiBase()->GetApi(ORT_API_VERSION);
    if (a == nullptr) throw OrtError("the loaded ONNX Runtime library does not provide API version " + std::to_string(ORT_API_VERSION));
    return a;
  }();
  return *api;
}

OrtEnv* OrtEnvironment() {
  static std::once_flag once;
  static OrtEnv* env = nullptr;
  std::call_once(once, [] {
    // Every failure reaches the caller through an OrtStatus, so ORT's own log would only repeat it.
    ThrowOnError(Ort().CreateEnv(ORT_LOGGING_LEVEL_FATAL, "img2prompt", &env), "creating the ONNX Runtime environment");
  });
  return env;
}

std::string OrtVersion() { return OrtGetApiBase()->GetVersionString(); }

void ThrowOnError(OrtStatus* status, const std::string& context) {
  if (status == nullptr) return;
  std::string message = Ort().GetErrorMessage(status);
  Ort().ReleaseStatus(status);
  throw OrtError(context.empty() ? message : context + ": " + message);
}

}  // namespace img2prompt

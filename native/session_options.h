// Session options: read from openSession()'s second argument and applied to a new OrtSessionOptions
// (the part of a session onnxruntime-node keeps in session_options_helper.cc).
#pragma once
#include <napi.h>
#include <onnxruntime_c_api.h>

#include <string>
#include <vector>

namespace img2prompt {

struct OpenOptions {
  std::vector<std::string> providers{"cpu"};
  int intra_op_threads = 0;  // 0: ORT's default (one per physical core)
  GraphOptimizationLevel optimization = ORT_ENABLE_ALL;
  bool spin_wait = true;  // intra-op workers busy-wait between ops (lower latency, burns CPU)
};

// Like onnxruntime-node's parser, a wrong-typed option throws (a terse TypeError: Session.open in
// src/runtime/session.ts has checked it first) instead of being dropped. Undefined gives the defaults.
OpenOptions ParseOpenOptions(Napi::Env env, const Napi::Value& value);

// A new OrtSessionOptions carrying `options`, plus the CUDA provider when `with_cuda`; the caller
// releases it. Throws OrtError.
OrtSessionOptions* NewSessionOptions(const OpenOptions& options, bool with_cuda);

}  // namespace img2prompt

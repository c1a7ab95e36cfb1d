// An ORT IoBinding over a session, exposed to JS. An input stays bound until it is bound again, and ORT
// copies a bound input to the device that consumes it when it is bound: on CUDA a label bank bound once
// lives in device memory from then on, and a run moves only the inputs bound for it (one small copy in)
// and its outputs (one small copy out). On the CPU provider a bound input is read in place.
#pragma once
#include <napi.h>

namespace img2prompt {

// exports.createIoBinding(session) → IoBinding { bindInputs(feeds), run(feeds, outputs), close() }.
void RegisterIoBinding(Napi::Env env, Napi::Object exports);

}  // namespace img2prompt

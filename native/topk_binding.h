// JS bindings of the similarity top-k kernel (topk.h): topk(), scoresAll(), topkKernel().
#pragma once
#include <napi.h>

namespace img2prompt {

void RegisterTopK(Napi::Env env, Napi::Object exports);

}  // namespace img2prompt

// Streaming-read probe: sums a large float array on N threads as fast as the memory system allows.
// It is the bandwidth floor the top-k kernel is measured against (bench/topk.bench.ts): top-k at
// small B has to read the whole bank once, so it cannot beat this.
#pragma once
#include <napi.h>

#include <cstddef>

namespace img2prompt {

// Sum of data[0..count) over `threads` threads (each a contiguous slice); AVX2 where the CPU has it.
double StreamSum(const float* data, size_t count, unsigned threads, double* seconds);

// JS binding: streamRead(data: Float32Array, { threads?, passes? }) -> Promise<{ sum, seconds[], kernel }>.
void RegisterStreamRead(Napi::Env env, Napi::Object exports);

}  // namespace img2prompt

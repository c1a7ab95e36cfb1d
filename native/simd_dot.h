// Dot products between a few query vectors and a block of label-bank rows (float32 or float16 bits).
// Two implementations: AVX2+FMA+F16C (compiled per function, the build itself stays portable) and a
// plain C++ fallback; SelectDotKernels() picks one by what the CPU supports.
#pragma once
#include <cstddef>
#include <cstdint>

namespace img2prompt {

// Queries copied once into a zero-padded, 32-byte aligned buffer: each row holds `padded_dim`
// floats (dim rounded up to 8) so the vector loop reads whole lanes without bounds checks.
struct QueryPack {
  const float* data = nullptr;
  size_t count = 0;
  size_t dim = 0;
  size_t padded_dim = 0;
};

// Memory the caller will score next (may be null), to be pulled into cache during this call.
struct Prefetch {
  const void* data = nullptr;
  size_t bytes = 0;
};

// out[q * out_stride + r] = <query q, bank row r> for q < queries.count, r < nrows. Every (query,
// row) pair is summed in the same order whatever its position in the block, so identical rows get
// bit-identical scores (which is what makes "ties go to the lower index" meaningful).
using ScoreBlockF32 = void (*)(const QueryPack& queries, const float* rows, size_t nrows, float* out, size_t out_stride,
                               const Prefetch& next);
using ScoreBlockF16 = void (*)(const QueryPack& queries, const uint16_t* rows, size_t nrows, float* out,
                               size_t out_stride, const Prefetch& next);

struct DotKernels {
  ScoreBlockF32 f32;
  ScoreBlockF16 f16;
  const char* name;
};

// The fastest kernels this CPU runs; `allow_simd` false forces the portable ones (tests, comparisons).
const DotKernels& SelectDotKernels(bool allow_simd = true);

// IEEE half (as its 16 bits) to float, exact; NaN payloads keep their top bits.
float HalfToFloat(uint16_t bits);

}  // namespace img2prompt

#include "simd_dot.h"

#include <cstring>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define IMG2PROMPT_X86 1
#define IMG2PROMPT_AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

namespace img2prompt {

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // Inf / NaN
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;  // signed zero
  } else {
    // Subnormal half: shift the mantissa up until its leading 1 becomes the implicit bit.
    uint32_t e = 113;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --e;
    }
    bits = sign | (e << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

namespace {

// Pulls the block a worker will score next into cache a few lines at a time, spread evenly over the
// inner-loop steps of the current block, so memory keeps streaming while this block is computed from
// cache. Without it, memory sits idle during the second and later query passes over a block (B=8 ran
// ~2x slower); issuing the whole block's prefetches at once overran the miss queues (B=1 ~2x slower).
class BlockPrefetcher {
 public:
  BlockPrefetcher(const Prefetch& next, size_t ticks)
      : at_(static_cast<const char*>(next.data)), end_(at_ + (next.data ? next.bytes : 0)) {
    const size_t lines = (next.bytes + 63) / 64;
    per_tick_ = ticks ? (lines + ticks - 1) / ticks : lines;
  }
  // Into L2 (not L1): the block is re-read once per query tile and L1 cannot hold it.
  void Tick() {
    for (size_t i = 0; i < per_tick_ && at_ < end_; ++i, at_ += 64) __builtin_prefetch(at_, 0, 2);
  }

 private:
  const char* at_;
  const char* end_;
  size_t per_tick_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Portable path. Eight running sums, one per lane of the vector path, so compilers can map them onto
// whatever SIMD the baseline ISA has (SSE2 on x86-64) and the summation order stays fixed.

float DotScalar(const float* q, const float* row, size_t dim) {
  float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t d = 0;
  for (; d + 8 <= dim; d += 8)
    for (int l = 0; l < 8; ++l) lanes[l] += q[d + l] * row[d + l];
  for (int l = 0; d + l < dim; ++l) lanes[l] += q[d + l] * row[d + l];
  return ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]));
}

void ScoreBlockScalarF32(const QueryPack& qp, const float* rows, size_t nrows, float* out, size_t out_stride,
                         const Prefetch&) {
  for (size_t r = 0; r < nrows; ++r)
    for (size_t j = 0; j < qp.count; ++j)
      out[j * out_stride + r] = DotScalar(qp.data + j * qp.padded_dim, rows + r * qp.dim, qp.dim);
}

void ScoreBlockScalarF16(const QueryPack& qp, const uint16_t* rows, size_t nrows, float* out, size_t out_stride,
                         const Prefetch&) {
  thread_local std::vector<float> row;  // one decoded row, reused across blocks
  row.resize(qp.dim);
  for (size_t r = 0; r < nrows; ++r) {
    const uint16_t* src = rows + r * qp.dim;
    for (size_t d = 0; d < qp.dim; ++d) row[d] = HalfToFloat(src[d]);
    for (size_t j = 0; j < qp.count; ++j)
      out[j * out_stride + r] = DotScalar(qp.data + j * qp.padded_dim, row.data(), qp.dim);
  }
}

#ifdef IMG2PROMPT_X86
// ---------------------------------------------------------------------------------------------
// AVX2 path. A tile of R rows x Q queries keeps R*Q accumulators in registers (R*Q + R <= 16 ymm):
// each 8-wide chunk of a row is loaded (and converted from fp16) once and used Q times.

IMG2PROMPT_AVX2 inline __m256 Load8(const float* p) { return _mm256_loadu_ps(p); }
IMG2PROMPT_AVX2 inline __m256 Load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// The last n (< 8) elements of a row, zeros after them; never reads past the row.
alignas(32) const int32_t kTailMask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
IMG2PROMPT_AVX2 inline __m256 LoadTail(const float* p, size_t n) {
  return _mm256_maskload_ps(p, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kTailMask + 8 - n)));
}
IMG2PROMPT_AVX2 inline __m256 LoadTail(const uint16_t* p, size_t n) {
  alignas(16) uint16_t tail[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::memcpy(tail, p, n * sizeof(uint16_t));
  return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(tail)));
}

IMG2PROMPT_AVX2 inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

template <int R, int Q, typename T>
IMG2PROMPT_AVX2 inline void Tile(const QueryPack& qp, const float* q, const T* rows, float* out, size_t out_stride,
                                 BlockPrefetcher& prefetch) {
  const size_t dim = qp.dim, qstride = qp.padded_dim, full = dim & ~size_t{7};
  __m256 acc[R][Q];
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < Q; ++j) acc[i][j] = _mm256_setzero_ps();
  for (size_t d = 0; d < full; d += 8) {
    prefetch.Tick();
    __m256 r[R];
    for (int i = 0; i < R; ++i) r[i] = Load8(rows + i * dim + d);
    for (int j = 0; j < Q; ++j) {
      const __m256 qv = _mm256_load_ps(q + j * qstride + d);
      for (int i = 0; i < R; ++i) acc[i][j] = _mm256_fmadd_ps(r[i], qv, acc[i][j]);
    }
  }
  if (full < dim) {
    __m256 r[R];
    for (int i = 0; i < R; ++i) r[i] = LoadTail(rows + i * dim + full, dim - full);
    for (int j = 0; j < Q; ++j) {
      const __m256 qv = _mm256_load_ps(q + j * qstride + full);
      for (int i = 0; i < R; ++i) acc[i][j] = _mm256_fmadd_ps(r[i], qv, acc[i][j]);
    }
  }
  for (int j = 0; j < Q; ++j)
    for (int i = 0; i < R; ++i) out[j * out_stride + i] = HorizontalSum(acc[i][j]);
}

// All rows of the block against Q queries starting at `q`: R-row tiles, then single rows.
template <int R, int Q, typename T>
IMG2PROMPT_AVX2 inline void RowsAgainst(const QueryPack& qp, const float* q, const T* rows, size_t nrows, float* out,
                                        size_t out_stride, BlockPrefetcher& prefetch) {
  size_t r = 0;
  for (; r + R <= nrows; r += R) Tile<R, Q>(qp, q, rows + r * qp.dim, out + r, out_stride, prefetch);
  for (; r < nrows; ++r) Tile<1, Q>(qp, q, rows + r * qp.dim, out + r, out_stride, prefetch);
}

// Tile shapes: 4 queries x 3 rows for the bulk, then the leftover 1-3 queries with as many rows as
// the 16 ymm registers allow.
constexpr size_t TilesPerPass(size_t nrows, size_t r) { return nrows / r + nrows % r; }

template <typename T>
IMG2PROMPT_AVX2 void ScoreBlockAvx2(const QueryPack& qp, const T* rows, size_t nrows, float* out, size_t out_stride,
                                    const Prefetch& next) {
  const size_t full_tiles = qp.count / 4, rest = qp.count % 4;
  const size_t rest_rows = rest == 3 ? 4 : rest == 2 ? 5 : 8;
  const size_t tiles = full_tiles * TilesPerPass(nrows, 3) + (rest ? TilesPerPass(nrows, rest_rows) : 0);
  BlockPrefetcher prefetch(next, tiles * (qp.dim / 8));
  size_t j = 0;
  for (; j + 4 <= qp.count; j += 4)
    RowsAgainst<3, 4>(qp, qp.data + j * qp.padded_dim, rows, nrows, out + j * out_stride, out_stride, prefetch);
  const float* q = qp.data + j * qp.padded_dim;
  float* o = out + j * out_stride;
  switch (rest) {
    case 3: RowsAgainst<4, 3>(qp, q, rows, nrows, o, out_stride, prefetch); break;
    case 2: RowsAgainst<5, 2>(qp, q, rows, nrows, o, out_stride, prefetch); break;
    case 1: RowsAgainst<8, 1>(qp, q, rows, nrows, o, out_stride, prefetch); break;
    default: break;
  }
}

IMG2PROMPT_AVX2 void ScoreBlockAvx2F32(const QueryPack& qp, const float* rows, size_t nrows, float* out,
                                       size_t out_stride, const Prefetch& next) {
  ScoreBlockAvx2(qp, rows, nrows, out, out_stride, next);
}
IMG2PROMPT_AVX2 void ScoreBlockAvx2F16(const QueryPack& qp, const uint16_t* rows, size_t nrows, float* out,
                                       size_t out_stride, const Prefetch& next) {
  ScoreBlockAvx2(qp, rows, nrows, out, out_stride, next);
}

bool CpuHasAvx2Fma() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}
#endif

}  // namespace

const DotKernels& SelectDotKernels(bool allow_simd) {
  static const DotKernels scalar{ScoreBlockScalarF32, ScoreBlockScalarF16, "scalar"};
#ifdef IMG2PROMPT_X86
  static const DotKernels avx2{ScoreBlockAvx2F32, ScoreBlockAvx2F16, "avx2-fma-f16c"};
  static const bool has_avx2 = CpuHasAvx2Fma();
  if (allow_simd && has_avx2) return avx2;
#endif
  return scalar;
}

}  // namespace img2prompt

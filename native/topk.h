// Fused similarity top-k over a label bank: scores each query against every bank row block by block
// and keeps only the best k per query, never holding the B x N score matrix. Rows and queries are
// expected to be L2-normalised, so a dot product is a cosine similarity.
#pragma once
#include <cstddef>
#include <cstdint>

namespace img2prompt {

struct SimilarityJob {
  const float* queries = nullptr;  // count x dim, row-major
  size_t query_count = 0;
  const void* bank = nullptr;      // rows x dim, float or IEEE half bits
  bool bank_f16 = false;
  size_t bank_rows = 0;
  size_t dim = 0;
  unsigned threads = 0;            // 0: one per hardware thread
  bool allow_simd = true;
  // Testing knobs. force_threads > 0: exactly that many workers whatever the job size, block b dealt
  // to worker b mod force_threads (so a test knows which worker's heap saw which row); block_rows > 0
  // overrides the bank rows per block, so a small bank spans many blocks.
  unsigned force_threads = 0;
  size_t block_rows = 0;
};

// Best k' = min(k, rows) bank rows per query into indices/scores [query_count x k'], best first;
// equal scores go to the lower row index. `least` ranks by lowest score instead (ascending). NaN
// scores (a NaN in the bank) rank last either way. Returns the OS threads that scored blocks (0 when
// there was nothing to do), so tests can tell the forced workers really ran.
unsigned TopKSimilar(const SimilarityJob& job, size_t k, bool least, int32_t* indices, float* scores);

// Every score, out[q * rows + r]; for banks small enough that B x N is fine to keep.
void AllSimilarities(const SimilarityJob& job, float* out);

}  // namespace img2prompt

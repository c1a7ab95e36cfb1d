#include "topk.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <system_error>
#include <thread>
#include <vector>

#include "simd_dot.h"

namespace img2prompt {
namespace {

// ---------------------------------------------------------------------------------------------
// Work layout

// Rows per block: about this many bank bytes, so a block stays in L2 while every query tile walks it.
constexpr size_t kBlockBytes = 128 * 1024;
// Below this many multiply-adds a call is not worth waking a second thread for.
constexpr double kMinWorkPerThread = 4.0e6;

size_t BlockRows(const SimilarityJob& job) {
  if (job.block_rows) return job.block_rows;
  const size_t row_bytes = std::max<size_t>(1, job.dim * (job.bank_f16 ? 2 : 4));
  size_t rows = kBlockBytes / row_bytes;
  rows = rows / 24 * 24;  // whole 3-, 4- and 8-row tiles
  return std::clamp<size_t>(rows, 24, 2400);
}

unsigned ThreadCount(const SimilarityJob& job, size_t blocks) {
  if (job.force_threads) return job.force_threads;
  unsigned wanted = job.threads ? job.threads : std::max(1u, std::thread::hardware_concurrency());
  const double work = static_cast<double>(job.query_count) * job.bank_rows * job.dim;
  const double by_work = std::max(1.0, std::floor(work / kMinWorkPerThread));
  return static_cast<unsigned>(std::min<double>({static_cast<double>(wanted), static_cast<double>(blocks), by_work}));
}

struct RowRange {
  size_t first = 0;
  size_t count = 0;
};

// Runs body(worker, block, next_block) over every block of rows with `workers` workers; the calling
// thread is worker 0. Dynamic: workers pull blocks from a shared counter (so one slowed by other load
// just takes fewer), each claiming its next block before scoring the current one so it can prefetch
// it. Static (`deal`): worker w scores blocks w, w + workers, ...; a worker whose thread could not be
// started runs on the calling thread afterwards, so every block is still scored by its own worker.
// Returns how many OS threads ran; rethrows the first exception a worker raised.
template <typename Body>
unsigned ForEachBlock(size_t total_rows, size_t block_rows, unsigned workers, bool deal, Body&& body) {
  const size_t blocks = (total_rows + block_rows - 1) / block_rows;
  auto range = [&](size_t b) {
    return b < blocks ? RowRange{b * block_rows, std::min(block_rows, total_rows - b * block_rows)} : RowRange{};
  };
  std::atomic<size_t> next{0};
  std::exception_ptr failure;
  std::atomic<bool> failed{false};
  auto work = [&](unsigned worker) {
    try {
      if (deal) {
        for (size_t b = worker; b < blocks && !failed.load(std::memory_order_relaxed); b += workers)
          body(worker, range(b), range(b + workers));
        return;
      }
      for (size_t b = next.fetch_add(1); b < blocks && !failed.load(std::memory_order_relaxed);) {
        const size_t after = next.fetch_add(1);
        body(worker, range(b), range(after));
        b = after;
      }
    } catch (...) {
      if (!failed.exchange(true)) failure = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(workers > 0 ? workers - 1 : 0);
  unsigned started = 1;
  for (; started < workers; ++started) {
    try {
      pool.emplace_back(work, started);
    } catch (const std::system_error&) {
      break;  // no more threads to be had: the ones running (at least this one) take all the blocks
    }
  }
  work(0);
  if (deal)
    for (unsigned w = started; w < workers; ++w) work(w);
  for (std::thread& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
  return started;
}

// Queries copied into rows of padded_dim floats, zero after dim, 32-byte aligned (see QueryPack).
class PackedQueries {
 public:
  explicit PackedQueries(const SimilarityJob& job) {
    pack_.count = job.query_count;
    pack_.dim = job.dim;
    pack_.padded_dim = (job.dim + 7) / 8 * 8;
    const size_t bytes = std::max<size_t>(32, pack_.count * pack_.padded_dim * sizeof(float));
    storage_.reset(static_cast<float*>(std::aligned_alloc(32, bytes)));
    if (!storage_) throw std::bad_alloc();
    std::memset(storage_.get(), 0, bytes);
    for (size_t q = 0; q < pack_.count; ++q)
      std::memcpy(storage_.get() + q * pack_.padded_dim, job.queries + q * job.dim, job.dim * sizeof(float));
    pack_.data = storage_.get();
  }
  const QueryPack& pack() const { return pack_; }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> storage_;
  QueryPack pack_;
};

// Scores of the rows in `block` against all queries into out (row stride out_stride), prefetching `next`.
void ScoreRows(const SimilarityJob& job, const DotKernels& kernels, const QueryPack& queries, RowRange block,
               RowRange next, float* out, size_t out_stride) {
  const size_t row_bytes = job.dim * (job.bank_f16 ? 2 : 4);
  const Prefetch ahead{next.count ? static_cast<const char*>(job.bank) + next.first * row_bytes : nullptr,
                       next.count * row_bytes};
  if (job.bank_f16)
    kernels.f16(queries, static_cast<const uint16_t*>(job.bank) + block.first * job.dim, block.count, out, out_stride,
                ahead);
  else
    kernels.f32(queries, static_cast<const float*>(job.bank) + block.first * job.dim, block.count, out, out_stride,
                ahead);
}

// ---------------------------------------------------------------------------------------------
// Selection

// `key` is what ranks (the score, negated for bottom-k, -inf for NaN); `score` is what is reported.
struct Candidate {
  float key;
  int32_t index;
  float score;
};

// Strict total order: higher key first, then lower index.
inline bool Better(const Candidate& a, const Candidate& b) {
  return a.key > b.key || (a.key == b.key && a.index < b.index);
}

// The k best candidates seen so far; with Better as the heap order, front() is the worst of them.
class BoundedHeap {
 public:
  explicit BoundedHeap(size_t k) : k_(k) { items_.reserve(k); }

  void Offer(float key, int32_t index, float score) {
    if (items_.size() < k_) {
      items_.push_back({key, index, score});
      std::push_heap(items_.begin(), items_.end(), Better);
      return;
    }
    const Candidate c{key, index, score};
    if (!Better(c, items_.front())) return;
    std::pop_heap(items_.begin(), items_.end(), Better);
    items_.back() = c;
    std::push_heap(items_.begin(), items_.end(), Better);
  }
  // Cheap pre-check for the common case: a full heap whose worst key beats `key` outright.
  bool Rejects(float key) const { return items_.size() == k_ && key < items_.front().key; }
  const std::vector<Candidate>& items() const { return items_; }

 private:
  size_t k_;
  std::vector<Candidate> items_;
};

inline float RankKey(float score, bool least) {
  if (std::isnan(score)) return -std::numeric_limits<float>::infinity();
  return least ? -score : score;
}

}  // namespace

unsigned TopKSimilar(const SimilarityJob& job, size_t k, bool least, int32_t* indices, float* scores) {
  k = std::min(k, job.bank_rows);
  if (k == 0 || job.query_count == 0) return 0;
  const DotKernels& kernels = SelectDotKernels(job.allow_simd);
  const PackedQueries queries(job);
  const size_t block_rows = BlockRows(job);
  const unsigned workers = ThreadCount(job, (job.bank_rows + block_rows - 1) / block_rows);

  // Per worker: one heap per query and one block of scores.
  struct WorkerState {
    std::vector<BoundedHeap> heaps;
    std::vector<float> block;
  };
  std::vector<WorkerState> state(workers);
  for (WorkerState& s : state) {
    s.heaps.assign(job.query_count, BoundedHeap(k));
    s.block.resize(job.query_count * block_rows);
  }

  auto score_block = [&](unsigned worker, RowRange block, RowRange next) {
    WorkerState& s = state[worker];
    ScoreRows(job, kernels, queries.pack(), block, next, s.block.data(), block_rows);
    const size_t first = block.first, rows = block.count;
    for (size_t q = 0; q < job.query_count; ++q) {
      BoundedHeap& heap = s.heaps[q];
      const float* block = s.block.data() + q * block_rows;
      for (size_t r = 0; r < rows; ++r) {
        const float key = RankKey(block[r], least);
        if (heap.Rejects(key)) continue;
        heap.Offer(key, static_cast<int32_t>(first + r), block[r]);
      }
    }
  };
  const unsigned ran = ForEachBlock(job.bank_rows, block_rows, workers, job.force_threads > 0, score_block);

  // Merge the workers' heaps; the order is total, so the result does not depend on who saw what.
  std::vector<Candidate> merged;
  for (size_t q = 0; q < job.query_count; ++q) {
    merged.clear();
    for (const WorkerState& s : state) merged.insert(merged.end(), s.heaps[q].items().begin(), s.heaps[q].items().end());
    std::partial_sort(merged.begin(), merged.begin() + k, merged.end(), Better);
    for (size_t i = 0; i < k; ++i) {
      indices[q * k + i] = merged[i].index;
      scores[q * k + i] = merged[i].score;
    }
  }
  return ran;
}

void AllSimilarities(const SimilarityJob& job, float* out) {
  if (job.query_count == 0 || job.bank_rows == 0) return;
  const DotKernels& kernels = SelectDotKernels(job.allow_simd);
  const PackedQueries queries(job);
  const size_t block_rows = BlockRows(job);
  const unsigned workers = ThreadCount(job, (job.bank_rows + block_rows - 1) / block_rows);
  auto score_block = [&](unsigned, RowRange block, RowRange next) {
    ScoreRows(job, kernels, queries.pack(), block, next, out + block.first, job.bank_rows);
  };
  ForEachBlock(job.bank_rows, block_rows, workers, job.force_threads > 0, score_block);
}

}  // namespace img2prompt

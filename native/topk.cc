#include "topk.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <string>
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

// ---------------------------------------------------------------------------------------------
// JS bindings

namespace {

struct ArrayView {
  const void* data;
  size_t length;  // elements
};

// Element pointer straight from the typed array (also right for a SharedArrayBuffer behind it).
ArrayView ViewOf(const Napi::TypedArray& ta) {
  if (ta.TypedArrayType() == napi_uint16_array) {
    Napi::Uint16Array a = ta.As<Napi::Uint16Array>();
    return {a.Data(), a.ElementLength()};
  }
  Napi::Float32Array a = ta.As<Napi::Float32Array>();
  return {a.Data(), a.ElementLength()};
}

// A non-negative integer argument (or option) that fits size_t exactly.
size_t ReadCount(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsNumber()) throw Napi::TypeError::New(env, "topk: " + what + " must be a number");
  const double x = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(x) || x != std::floor(x)) throw Napi::RangeError::New(env, "topk: " + what + " must be an integer, got " + v.ToString().Utf8Value());
  if (x < 0) throw Napi::RangeError::New(env, "topk: " + what + " must not be negative, got " + v.ToString().Utf8Value());
  if (x > 9007199254740991.0) throw Napi::RangeError::New(env, "topk: " + what + " is too large");
  return static_cast<size_t>(x);
}

// Arguments shared by topk() and scoresAll(): (queries, queryDim, bank, bankDim, options).
struct ParsedJob {
  SimilarityJob job;
  Napi::Reference<Napi::TypedArray> queries_ref;
  Napi::Reference<Napi::TypedArray> bank_ref;
  bool least = false;
};

ParsedJob ParseJob(const Napi::CallbackInfo& info, size_t options_at) {
  Napi::Env env = info.Env();
  ParsedJob p;
  if (info.Length() < 4) throw Napi::TypeError::New(env, "topk: expected (queries, queryDim, bank, bankDim, ...)");
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(env, "topk: queries must be a Float32Array");
  if (!info[2].IsTypedArray())
    throw Napi::TypeError::New(env, "topk: bank must be a Float32Array or a Uint16Array of float16 bits");
  Napi::TypedArray queries = info[0].As<Napi::TypedArray>();
  Napi::TypedArray bank = info[2].As<Napi::TypedArray>();
  const napi_typedarray_type bank_type = bank.TypedArrayType();
  if (bank_type != napi_float32_array && bank_type != napi_uint16_array)
    throw Napi::TypeError::New(env, "topk: bank must be a Float32Array or a Uint16Array of float16 bits");
  const size_t query_dim = ReadCount(env, info[1], "query dimension");
  const size_t bank_dim = ReadCount(env, info[3], "bank dimension");
  if (query_dim == 0) throw Napi::RangeError::New(env, "topk: dimension must be at least 1");
  if (query_dim != bank_dim)
    throw Napi::RangeError::New(env, "topk: queries have dimension " + std::to_string(query_dim) + ", the bank has " +
                                         std::to_string(bank_dim));
  const ArrayView q = ViewOf(queries), b = ViewOf(bank);
  if (q.length % query_dim != 0)
    throw Napi::RangeError::New(env, "topk: queries hold " + std::to_string(q.length) +
                                         " values, not a multiple of the dimension " + std::to_string(query_dim));
  if (b.length % bank_dim != 0)
    throw Napi::RangeError::New(env, "topk: bank holds " + std::to_string(b.length) +
                                         " values, not a multiple of the dimension " + std::to_string(bank_dim));
  p.job.queries = static_cast<const float*>(q.data);
  p.job.query_count = q.length / query_dim;
  p.job.bank = b.data;
  p.job.bank_f16 = bank_type == napi_uint16_array;
  p.job.bank_rows = b.length / bank_dim;
  p.job.dim = query_dim;
  if (p.job.bank_rows > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    throw Napi::RangeError::New(env, "topk: bank has more rows than an Int32Array can index");
  for (size_t i = 0; i < q.length; ++i) {
    const float x = p.job.queries[i];
    if (!std::isfinite(x))
      throw Napi::RangeError::New(env, "topk: query " + std::to_string(i / query_dim) + " contains " +
                                           (std::isnan(x) ? "NaN" : "Infinity"));
  }

  Napi::Object options = info.Length() > options_at && info[options_at].IsObject()
                             ? info[options_at].As<Napi::Object>()
                             : Napi::Object::New(env);
  Napi::Value threads = options.Get("threads");
  if (!threads.IsUndefined()) {
    const size_t t = ReadCount(env, threads, "threads");
    if (t > 1024) throw Napi::RangeError::New(env, "topk: threads must be at most 1024");
    p.job.threads = static_cast<unsigned>(t);
  }
  Napi::Value force = options.Get("forceThreads");
  if (!force.IsUndefined()) {
    const size_t t = ReadCount(env, force, "forceThreads");
    if (t < 1 || t > 1024) throw Napi::RangeError::New(env, "topk: forceThreads must be from 1 to 1024");
    if (p.job.threads) throw Napi::RangeError::New(env, "topk: give threads or forceThreads, not both");
    p.job.force_threads = static_cast<unsigned>(t);
  }
  Napi::Value block_rows = options.Get("blockRows");
  if (!block_rows.IsUndefined()) {
    const size_t r = ReadCount(env, block_rows, "blockRows");
    if (r < 1 || r > (size_t{1} << 24)) throw Napi::RangeError::New(env, "topk: blockRows must be from 1 to 16777216");
    p.job.block_rows = r;
  }
  Napi::Value simd = options.Get("simd");
  if (!simd.IsUndefined()) p.job.allow_simd = simd.ToBoolean().Value();
  p.least = options.Get("least").ToBoolean().Value();
  // The worker reads both arrays in place; these references keep them alive until it is done.
  p.queries_ref = Napi::Persistent(queries);
  p.bank_ref = Napi::Persistent(bank);
  return p;
}

class TopKWorker : public Napi::AsyncWorker {
 public:
  TopKWorker(Napi::Env env, ParsedJob parsed, size_t k)
      : Napi::AsyncWorker(env, "img2prompt.topk"),
        deferred_(Napi::Promise::Deferred::New(env)),
        parsed_(std::move(parsed)),
        k_(std::min(k, parsed_.job.bank_rows)),
        least_(parsed_.least) {
    // Results are written straight into the arrays handed back, so nothing is copied afterwards.
    Napi::Int32Array indices = Napi::Int32Array::New(env, parsed_.job.query_count * k_);
    Napi::Float32Array scores = Napi::Float32Array::New(env, parsed_.job.query_count * k_);
    indices_ = indices.Data();
    scores_ = scores.Data();
    indices_ref_ = Napi::Persistent(indices);
    scores_ref_ = Napi::Persistent(scores);
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      threads_ = TopKSimilar(parsed_.job, k_, least_, indices_, scores_);
    } catch (const std::exception& e) {
      SetError(std::string("topk: ") + e.what());
    }
  }
  void OnOK() override {
    Napi::Object result = Napi::Object::New(Env());
    result.Set("indices", indices_ref_.Value());
    result.Set("scores", scores_ref_.Value());
    result.Set("k", Napi::Number::New(Env(), static_cast<double>(k_)));
    result.Set("threads", Napi::Number::New(Env(), threads_));
    deferred_.Resolve(result);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  ParsedJob parsed_;
  size_t k_;
  bool least_;
  unsigned threads_ = 0;
  Napi::Reference<Napi::Int32Array> indices_ref_;
  Napi::Reference<Napi::Float32Array> scores_ref_;
  int32_t* indices_ = nullptr;
  float* scores_ = nullptr;
};

class AllScoresWorker : public Napi::AsyncWorker {
 public:
  AllScoresWorker(Napi::Env env, ParsedJob parsed)
      : Napi::AsyncWorker(env, "img2prompt.scoresAll"),
        deferred_(Napi::Promise::Deferred::New(env)),
        parsed_(std::move(parsed)) {
    Napi::Float32Array out = Napi::Float32Array::New(env, parsed_.job.query_count * parsed_.job.bank_rows);
    out_ = out.Data();
    out_ref_ = Napi::Persistent(out);
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      AllSimilarities(parsed_.job, out_);
    } catch (const std::exception& e) {
      SetError(std::string("scoresAll: ") + e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(out_ref_.Value()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  ParsedJob parsed_;
  Napi::Reference<Napi::Float32Array> out_ref_;
  float* out_ = nullptr;
};

// topk(queries, queryDim, bank, bankDim, k, { threads?, least?, simd?, forceThreads?, blockRows? })
//   -> Promise<{ indices, scores, k, threads }>
Napi::Value TopKJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ParsedJob parsed = ParseJob(info, 5);
  if (info.Length() < 5) throw Napi::TypeError::New(env, "topk: k is missing");
  const size_t k = ReadCount(env, info[4], "k");
  auto* worker = new TopKWorker(env, std::move(parsed), k);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// scoresAll(queries, queryDim, bank, bankDim, { threads?, simd?, forceThreads?, blockRows? }) -> Promise<Float32Array [B x N]>
Napi::Value ScoresAllJs(const Napi::CallbackInfo& info) {
  auto* worker = new AllScoresWorker(info.Env(), ParseJob(info, 4));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value TopKKernelJs(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), SelectDotKernels(true).name);
}

}  // namespace

void RegisterTopK(Napi::Env env, Napi::Object exports) {
  exports.Set("topk", Napi::Function::New(env, TopKJs, "topk"));
  exports.Set("scoresAll", Napi::Function::New(env, ScoresAllJs, "scoresAll"));
  exports.Set("topkKernel", Napi::Function::New(env, TopKKernelJs, "topkKernel"));
}

}  // namespace img2prompt

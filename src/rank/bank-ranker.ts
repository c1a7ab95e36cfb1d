import { Session, defaultProviders, tensor, type ExecutionProvider } from '../runtime/session.js';
import { buildBankTopKGraph } from '../../models/graph/bank-topk.js';
import { IoBinding } from '../runtime/io-binding.js';
import { fromFloat16 } from './float16.js';
import { checkQueries, matrixShape, topk, bottomk, type Matrix, type TopKResult } from './topk.js';

/** Ranks query embeddings against one fixed bank; `least` ranks the least similar first. */
export interface BankRanker {
  /** 'native' (the addon's SIMD kernel on the CPU) or the ORT provider running the MatMul+TopK graph. */
  readonly engine: 'native' | ExecutionProvider;
  rank(queries: Matrix, k: number, options?: { least?: boolean }): Promise<TopKResult>;
  close(): void;
}

class NativeRanker implements BankRanker {
  readonly engine = 'native' as const;
  constructor(private readonly bank: Matrix) {}
  rank(queries: Matrix, k: number, options: { least?: boolean } = {}): Promise<TopKResult> {
    return options.least ? bottomk(queries, this.bank, k) : topk(queries, this.bank, k);
  }
  close(): void {}
}

/**
 * The same operation as an ONNX graph run by ORT, for GPUs. The bank is bound once through an IoBinding
 * (on CUDA it is copied to device memory then, and stays there); each rank() binds its queries and k and
 * gets back only the k scores and indices per query, on the one session and binding kept open. Ranks
 * take turns on the binding. Least-similar ranking negates the queries (and the scores back), so one
 * graph serves both directions. Ties are ORT's to break.
 */
export class OnnxBankRanker implements BankRanker {
  private constructor(
    private readonly session: Session,
    private readonly binding: IoBinding,
    private readonly rows: number,
    private readonly dim: number,
  ) {}

  static async open(bank: Matrix, providers: ExecutionProvider[]): Promise<OnnxBankRanker> {
    const [rows, dim] = matrixShape(bank);
    const fp32 = bank.data instanceof Uint16Array ? fromFloat16(bank.data) : bank.data;
    const session = await Session.open(buildBankTopKGraph(rows, dim), { providers });
    try {
      const binding = IoBinding.create(session);
      await binding.bindInputs({ bank: tensor('float32', fp32, [rows, dim]) });
      return new OnnxBankRanker(session, binding, rows, dim);
    } catch (err) {
      session.close();
      throw err;
    }
  }

  get engine(): ExecutionProvider {
    return this.session.provider;
  }

  async rank(queries: Matrix, k: number, options: { least?: boolean } = {}): Promise<TopKResult> {
    // The same checks and errors as the native path: ORT would rank a NaN query arbitrarily.
    const b = checkQueries(queries, k, this.dim);
    const d = this.dim;
    const kk = Math.min(k, this.rows);
    if (kk === 0 || b === 0) return { rows: b, k: kk, indices: new Int32Array(0), scores: new Float32Array(0) };
    const q = options.least ? (queries.data as Float32Array).map((v) => -v) : (queries.data as Float32Array);
    const out = await this.binding.run({ queries: tensor('float32', q, [b, d]), k: tensor('int64', BigInt64Array.of(BigInt(kk)), [1]) });
    const scores = out.scores!.data as Float32Array;
    if (options.least) for (let i = 0; i < scores.length; i++) scores[i] = -scores[i]!;
    return { rows: b, k: kk, indices: Int32Array.from(out.indices!.data as BigInt64Array, Number), scores };
  }

  close(): void {
    this.binding.close();
    this.session.close();
  }
}

/**
 * The ranker for a bank: the ONNX graph when the session would run on CUDA (the bank then lives on the
 * GPU), else the native SIMD kernel, which on a CPU is as fast as ORT's GEMM or faster (bench/RESULTS.md).
 */
export async function openBankRanker(bank: Matrix, providers: ExecutionProvider[] = defaultProviders()): Promise<BankRanker> {
  if (providers.includes('cuda')) {
    const onnx = await OnnxBankRanker.open(bank, providers);
    if (onnx.engine === 'cuda') return onnx;
    onnx.close();
  }
  return new NativeRanker(bank);
}

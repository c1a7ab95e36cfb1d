import { native, type NativeIoBinding } from '../native/addon.js';
import { Img2PromptError } from '../util/errors.js';
import { toTensors, type RunOptions, type Session, type Tensor } from './session.js';

/**
 * Runs a session with ORT's IoBinding: an input stays bound until it is bound again, and ORT copies it,
 * when bound, to the device that consumes it. So a large constant input (a label bank) is bound once —
 * on CUDA it then lives in device memory — and each run binds only what changed (a few query rows: one
 * small copy in) and gets its outputs back (one small copy out). On the CPU provider bound inputs are
 * read in place, like Session.run's. Runs on one binding take turns; the session must stay open.
 */
export class IoBinding {
  #native: NativeIoBinding | undefined;
  readonly #bound = new Set<string>();

  private constructor(
    nativeBinding: NativeIoBinding,
    private readonly session: Session,
  ) {
    this.#native = nativeBinding;
  }

  static create(session: Session): IoBinding {
    return new IoBinding(native().createIoBinding(session.nativeSession()), session);
  }

  /** Binds inputs for every later run, checked against the model's signature. The arrays must not change while bound. */
  async bindInputs(feeds: Record<string, Tensor>): Promise<void> {
    const [list] = this.session.checkedRequests(feeds, { outputNames: [] }, true);
    try {
      await this.#live().bindInputs(list);
    } catch (err) {
      throw this.session.runError(err);
    }
    for (const name of Object.keys(feeds)) this.#bound.add(name);
  }

  /** Binds `feeds` (they stay bound) and runs with every bound input; outputs as Session.run's. */
  async run(feeds: Record<string, Tensor>, options: RunOptions = {}): Promise<Record<string, Tensor>> {
    const binding = this.#live();
    const [list, requests] = this.session.checkedRequests(feeds, options, true);
    const missing = this.session.inputs.find((i) => !(i.name in feeds) && !this.#bound.has(i.name));
    if (missing) throw new Img2PromptError(this.session.modelPath ?? '<model buffer>', `missing input '${missing.name}' (neither bound nor given)`);
    try {
      const out = toTensors(await binding.run(list, requests));
      for (const name of Object.keys(feeds)) this.#bound.add(name);
      return out;
    } catch (err) {
      throw this.session.runError(err);
    }
  }

  /** Frees the binding and what it holds (the bank's device copy); runs in flight finish first. */
  close(): void {
    this.#native?.close();
    this.#native = undefined;
  }

  #live(): NativeIoBinding {
    if (!this.#native) throw new Img2PromptError(this.session.modelPath ?? '<model buffer>', 'binding is closed');
    return this.#native;
  }
}

/**
 * Whether the model hub answers at all, asked once with a short timeout before a pull that would
 * otherwise spend half a minute retrying a host that does not resolve. Any HTTP answer counts as
 * reachable (the pull then reports what is wrong with the file itself).
 */
import { errorMessage } from '../util/errors.js';
import { hfEndpoint } from './sources/huggingface.js';

export type HubProbe = { reachable: true; endpoint: string } | { reachable: false; endpoint: string; reason: string };

/** Probes the Hugging Face endpoint (IMG2PROMPT_HF_ENDPOINT / HF_ENDPOINT honoured). */
export async function probeHub(timeoutMs = 5000): Promise<HubProbe> {
  const endpoint = hfEndpoint({ endpoint: 'https://huggingface.co', repo: '', revision: 'main' });
  try {
    const res = await fetch(endpoint, { method: 'HEAD', signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
    await res.body?.cancel();
    return { reachable: true, endpoint };
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    const code = (cause as NodeJS.ErrnoException | undefined)?.code;
    const reason = (err as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000} s` : code ? `${code}: ${errorMessage(cause)}` : errorMessage(err);
    return { reachable: false, endpoint, reason };
  }
}

import { Img2PromptError, errorMessage } from '../util/errors.js';
import { isSha256Hex } from '../models/sha256.js';
import { pypiUrlVariable } from '../config.js';

/** The package whose wheels carry ORT's CUDA provider libraries. */
export const ORT_GPU_PACKAGE = 'onnxruntime-gpu';

/** PyPI's JSON API; IMG2PROMPT_PYPI_URL points it elsewhere (a mirror, or a test server). */
export function pypiJsonBase(): string {
  return (pypiUrlVariable() ?? 'https://pypi.org/pypi').replace(/\/+$/, '');
}

export interface WheelFile {
  filename: string;
  url: string;
  size: number;
  sha256: string;
}

interface PypiFile {
  filename?: unknown;
  url?: unknown;
  size?: unknown;
  packagetype?: unknown;
  digests?: { sha256?: unknown };
}

const PLATFORM: Record<string, RegExp> = {
  x64: /^manylinux(_\d+_\d+|1|2010|2014)_x86_64$/,
  arm64: /^manylinux(_\d+_\d+|2014)_aarch64$/,
};

async function getJson(url: string): Promise<{ status: number; body?: unknown }> {
  let res: Response;
  try {
    res = await fetch(url, { headers: { accept: 'application/json', 'user-agent': 'img2prompt-gpu-install/1' } });
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    throw new Img2PromptError(url, `cannot reach PyPI (${cause instanceof Error ? cause.message : errorMessage(err)})`, { code: 'DOWNLOAD_FAILED', cause: err });
  }
  if (res.status !== 200) {
    await res.body?.cancel();
    return { status: res.status };
  }
  try {
    return { status: 200, body: await res.json() };
  } catch (err) {
    throw new Img2PromptError(url, `PyPI answered with something that is not JSON (${errorMessage(err)})`, { code: 'DOWNLOAD_FAILED', cause: err });
  }
}

/**
 * The files of `onnxruntime-gpu==version` from PyPI's JSON API: the release's own page, or the
 * project page's `releases[version]` where a mirror serves only that one. URLs are resolved against
 * the page they came from, so a mirror that answers with relative links works too.
 */
async function releaseFiles(version: string, base: string): Promise<{ files: PypiFile[]; page: string }> {
  const releasePage = `${base}/${ORT_GPU_PACKAGE}/${encodeURIComponent(version)}/json`;
  const release = await getJson(releasePage);
  if (release.status === 200) return { files: ((release.body as { urls?: PypiFile[] })?.urls ?? []), page: releasePage };
  const projectPage = `${base}/${ORT_GPU_PACKAGE}/json`;
  const project = await getJson(projectPage);
  if (project.status !== 200) {
    throw new Img2PromptError(releasePage, `HTTP ${release.status}: PyPI has no ${ORT_GPU_PACKAGE} ${version} (the ONNX Runtime version in use)`, { code: 'DOWNLOAD_FAILED' });
  }
  const files = (project.body as { releases?: Record<string, PypiFile[]> })?.releases?.[version];
  if (!files) throw new Img2PromptError(projectPage, `PyPI has no ${ORT_GPU_PACKAGE} ${version} (the ONNX Runtime version in use)`, { code: 'DOWNLOAD_FAILED' });
  return { files, page: projectPage };
}

/**
 * The Linux wheel of `onnxruntime-gpu==version` for this machine's architecture. The provider
 * libraries do not depend on Python, so any Python tag will do; the first by name among the
 * regular (not free-threaded) builds is taken, which makes the choice repeatable.
 */
export async function findProviderWheel(version: string, options: { base?: string; arch?: string } = {}): Promise<WheelFile> {
  const arch = options.arch ?? process.arch;
  const platform = PLATFORM[arch];
  if (process.platform !== 'linux' || !platform) {
    throw new Img2PromptError(undefined, `ORT's CUDA provider from ${ORT_GPU_PACKAGE} is installed only on Linux x64 or arm64 (this is ${process.platform} ${arch})`, { code: 'RUNTIME_FAILED' });
  }
  const { files, page } = await releaseFiles(version, options.base ?? pypiJsonBase());
  const candidates: (WheelFile & { freeThreaded: boolean })[] = [];
  for (const f of files) {
    if (typeof f.filename !== 'string' || !f.filename.endsWith('.whl')) continue;
    // name-version-python-abi-platform.whl, where platform may be several tags joined by dots.
    const parts = f.filename.slice(0, -4).split('-');
    if (parts.length !== 5 || !parts[4]!.split('.').some((t) => platform.test(t))) continue;
    if (typeof f.url !== 'string' || typeof f.size !== 'number' || !isSha256Hex(f.digests?.sha256)) {
      throw new Img2PromptError(page, `PyPI lists ${f.filename} without a url, size or sha256`, { code: 'DOWNLOAD_FAILED' });
    }
    candidates.push({
      filename: f.filename,
      url: new URL(f.url, page).href,
      size: f.size,
      sha256: f.digests.sha256,
      freeThreaded: parts[3]!.endsWith('t'),
    });
  }
  candidates.sort((a, b) => Number(a.freeThreaded) - Number(b.freeThreaded) || a.filename.localeCompare(b.filename));
  const pick = candidates[0];
  if (!pick) throw new Img2PromptError(page, `${ORT_GPU_PACKAGE} ${version} has no Linux ${arch} wheel on PyPI`, { code: 'DOWNLOAD_FAILED' });
  return { filename: pick.filename, url: pick.url, size: pick.size, sha256: pick.sha256 };
}

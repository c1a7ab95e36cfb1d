import { verifyModel, type VerifiedModel } from './cache.js';
import { verifyMiniLMOnnx } from '../../models/graph/bert.js';
import { verifyClipOnnx } from '../clip/onnx-cache.js';

/**
 * Everything `img2prompt models verify` checks in one installed model. The downloaded or imported
 * files are re-hashed against the install record: a mismatch is refused (thrown), since nothing here
 * can rebuild them. The graphs built from them are re-hashed against what their builder recorded: a
 * damaged one is derived data, so it is rebuilt and reported.
 */
export interface VerifiedInstall extends VerifiedModel {
  /** Files built from the installed ones (e.g. model.onnx, vision.onnx), relative to the model folder. */
  built: string[];
  /** One message per damaged built file that was rebuilt (naming it and why). */
  rebuilt: string[];
}

export async function verifyInstalledModel(name: string): Promise<VerifiedInstall> {
  const verified = await verifyModel(name);
  const rebuilt: string[] = [];
  const onRebuild = (message: string) => rebuilt.push(message);
  // A model folder holds the graphs of one builder at most; each verifier skips a folder it built nothing in.
  const built = [...(await verifyMiniLMOnnx(verified.dir, onRebuild)), ...(await verifyClipOnnx(verified.dir, onRebuild))];
  return { ...verified, built, rebuilt };
}

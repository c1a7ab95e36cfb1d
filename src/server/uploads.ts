/**
 * Reading a request's images and options. An upload is the raw body (with an image/* or
 * application/octet-stream content type) or the file parts of a multipart/form-data body; options come
 * from the query string or, in a multipart body, from its plain fields. Only bytes are ever read: no
 * field names a file on the server's disk.
 */
import path from 'node:path';
import type { FastifyRequest } from 'fastify';
import type { InterrogateMode } from '../interrogate/types.js';
import { INTERROGATE_MODES } from '../interrogate/types.js';
import { errorMessage } from '../util/errors.js';
import { HttpError } from './errors.js';

/** One image of a request: the id the response names it by, and its bytes. */
export interface Upload {
  id: string;
  data: Uint8Array;
}

export interface RequestImages {
  images: Upload[];
  /** Options: query parameters, overridden by multipart fields. */
  params: Record<string, string>;
  /** True for multipart: the response lists per-image errors instead of failing the request. */
  multipart: boolean;
}

export interface UploadLimits {
  /** Most bytes in a body (all parts together). */
  maxBytes: number;
  /** Most images in one request. */
  maxImages: number;
}

/** A part's id: its file name without the extension, else `<field>-<n>`. */
function partId(filename: string | undefined, field: string, n: number): string {
  const base = filename ? path.basename(filename, path.extname(filename)) : '';
  return base || `${field || 'image'}-${n}`;
}

function queryParams(request: FastifyRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries((request.query ?? {}) as Record<string, unknown>)) {
    if (typeof v === 'string') out[k] = v;
    else if (Array.isArray(v) && typeof v[v.length - 1] === 'string') out[k] = v[v.length - 1] as string;
  }
  return out;
}

/** The images of an image request (see the file comment); 415 for any other body, 413 past the limits. */
export async function readImages(request: FastifyRequest, limits: UploadLimits): Promise<RequestImages> {
  const params = queryParams(request);
  if (request.isMultipart()) {
    try {
      return await readParts(request, params, limits);
    } catch (err) {
      // Limits are fastify-multipart errors with a status (413); anything else the parser throws is
      // a malformed body (a missing boundary, a body cut short), the client's fault, not ours.
      if (err instanceof HttpError || typeof (err as { statusCode?: unknown }).statusCode === 'number') throw err;
      throw new HttpError(400, 'invalid_multipart', `the multipart body cannot be read: ${errorMessage(err)}`);
    }
  }
  const body = request.body;
  if (!Buffer.isBuffer(body)) {
    throw new HttpError(415, 'unsupported_media_type', 'send the image bytes as the body with an image/* (or application/octet-stream) content type, or several images as multipart/form-data');
  }
  const id = params.id && params.id.length <= 200 ? params.id : 'image';
  return { images: [{ id, data: new Uint8Array(body.buffer, body.byteOffset, body.length) }], params, multipart: false };
}

async function readParts(request: FastifyRequest, params: Record<string, string>, limits: UploadLimits): Promise<RequestImages> {
  const images: Upload[] = [];
  let bytes = 0;
  for await (const part of request.parts({ limits: { fileSize: limits.maxBytes, files: limits.maxImages + 1, fields: 64, fieldSize: 64 * 1024 } })) {
    if (part.type === 'field') {
      if (typeof part.value === 'string') params[part.fieldname] = part.value;
      continue;
    }
    if (images.length >= limits.maxImages) {
      throw new HttpError(413, 'too_many_images', `a request may hold at most ${limits.maxImages} images (the server's --queue)`);
    }
    const data = await part.toBuffer();
    bytes += data.length;
    if (bytes > limits.maxBytes) throw new HttpError(413, 'body_too_large', `the uploads exceed the body limit of ${limits.maxBytes} bytes (--max-body-mb)`);
    images.push({ id: partId(part.filename, part.fieldname, images.length), data: new Uint8Array(data.buffer, data.byteOffset, data.length) });
  }
  if (images.length === 0) throw new HttpError(400, 'no_images', 'the multipart body holds no file parts: send each image as a file part');
  return { images, params, multipart: true };
}

function positiveInt(name: string, text: string | undefined): number | undefined {
  if (text === undefined || text === '') return undefined;
  if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) {
    throw new HttpError(400, 'invalid_option', `${name} must be a positive integer, got ${JSON.stringify(text)}`);
  }
  return Number(text);
}

export function booleanParam(name: string, text: string | undefined, fallback: boolean): boolean {
  if (text === undefined || text === '') return fallback;
  if (['1', 'true', 'yes', 'on'].includes(text.toLowerCase())) return true;
  if (['0', 'false', 'no', 'off'].includes(text.toLowerCase())) return false;
  throw new HttpError(400, 'invalid_option', `${name} must be true or false (or 1/0), got ${JSON.stringify(text)}`);
}

/** The interrogate options a request may set: mode, maxFlavors, score. */
export function interrogateParams(params: Record<string, string>): { mode: InterrogateMode; maxFlavors?: number; score: boolean } {
  const mode = (params.mode ?? 'fast') as InterrogateMode;
  if (!INTERROGATE_MODES.includes(mode)) {
    throw new HttpError(400, 'invalid_option', `mode must be one of ${INTERROGATE_MODES.join(', ')}, got ${JSON.stringify(params.mode)}`);
  }
  const maxFlavors = positiveInt('maxFlavors', params.maxFlavors);
  return { mode, ...(maxFlavors !== undefined ? { maxFlavors } : {}), score: booleanParam('score', params.score, true) };
}

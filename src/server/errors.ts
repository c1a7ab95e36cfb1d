/**
 * The server's errors: every failure a client can cause or meet becomes an HttpError with a status, a
 * stable machine-readable code and a message for people, sent as `{ "error": { "code", "message" } }`.
 * Image failures arrive from the engines as reason strings (see decodeImage); httpErrorForImage sorts
 * them into "too large" (413) and "not an image we can read" (422).
 */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Extra response headers (Retry-After on 429, WWW-Authenticate on 401). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** The JSON body of every error response. */
export interface ErrorBody {
  error: { code: string; message: string };
}

export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

/** decodeImage words a pixel-limit refusal as "… is over the limit of N pixels (maxPixels, …)". */
const PIXEL_LIMIT = /over the limit of [\d,]+ pixels/i;

/** An engine's per-image failure reason → the error its request answers with. */
export function httpErrorForImage(id: string, reason: string): HttpError {
  if (PIXEL_LIMIT.test(reason)) return new HttpError(413, 'image_too_large', `image ${id}: ${reason}`);
  return new HttpError(422, 'undecodable_image', `image ${id}: ${reason}`);
}

/** The per-image error object of a multi-image response (the request as a whole still succeeds). */
export function imageErrorOf(id: string, reason: string): ErrorBody['error'] {
  const err = httpErrorForImage(id, reason);
  return { code: err.code, message: err.message };
}

/**
 * Fastify's own errors (body limits, media types, JSON syntax, multipart limits) → HttpError, so they
 * answer in the same shape as ours. Anything unknown is a 500 whose message does not leak internals.
 */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  const e = err as { code?: unknown; statusCode?: unknown; message?: unknown; validation?: unknown };
  const code = typeof e?.code === 'string' ? e.code : '';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
    case 'FST_REQ_FILE_TOO_LARGE':
    case 'FST_PARTS_LIMIT':
    case 'FST_FILES_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return new HttpError(413, 'body_too_large', message);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
      return new HttpError(415, 'unsupported_media_type', message);
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new HttpError(400, 'bad_request', message);
  }
  if (err instanceof SyntaxError) return new HttpError(400, 'bad_request', `invalid JSON body: ${message}`);
  const status = typeof e?.statusCode === 'number' ? e.statusCode : 500;
  if (status >= 400 && status < 500) return new HttpError(status, code ? code.toLowerCase() : 'bad_request', message);
  return new HttpError(500, 'internal_error', 'internal error: the request failed inside the server (see the server log)');
}

// How the server words failures: image reasons from the engines, Fastify's own errors, and anything
// unexpected (a 500 that does not leak the internal message).
import { describe, expect, it } from 'vitest';
import { HttpError, httpErrorForImage, toHttpError } from '../src/server/errors.js';

describe('server errors', () => {
  it('sorts image failure reasons into 413 (pixel limit) and 422 (anything else)', () => {
    expect(httpErrorForImage('a', '20000x20000 = 400,000,000 pixels is over the limit of 100,000,000 pixels (maxPixels, --max-pixels)')).toMatchObject({
      status: 413, code: 'image_too_large', message: 'image a: 20000x20000 = 400,000,000 pixels is over the limit of 100,000,000 pixels (maxPixels, --max-pixels)',
    });
    expect(httpErrorForImage('b', 'cannot decode image: unsupported image format')).toMatchObject({ status: 422, code: 'undecodable_image', message: 'image b: cannot decode image: unsupported image format' });
  });

  it('maps Fastify\'s errors to the same shape, and hides what an unexpected error says', () => {
    expect(toHttpError(Object.assign(new Error('Request body is too large'), { code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413 }))).toMatchObject({ status: 413, code: 'body_too_large' });
    expect(toHttpError(Object.assign(new Error('Unsupported Media Type: text/plain'), { code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE', statusCode: 415 }))).toMatchObject({ status: 415, code: 'unsupported_media_type' });
    expect(toHttpError(Object.assign(new Error('request file too large'), { code: 'FST_REQ_FILE_TOO_LARGE', statusCode: 413 }))).toMatchObject({ status: 413, code: 'body_too_large' });
    const internal = toHttpError(new Error('ORT session /home/x/model.onnx failed: bad alloc'));
    expect(internal).toEqual(new HttpError(500, 'internal_error', 'internal error: the request failed inside the server (see the server log)'));
    expect(internal.message).not.toContain('/home');
    const mine = new HttpError(429, 'queue_full', 'busy', { 'retry-after': '2' });
    expect(toHttpError(mine)).toBe(mine);
  });
});

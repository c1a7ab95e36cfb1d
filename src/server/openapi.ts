/**
 * The OpenAPI 3.1 description of the HTTP API, served at GET /openapi.json. Written out by hand next to
 * the routes (routes.ts) rather than generated from schemas: the image routes take raw bytes or
 * multipart bodies, which route schemas describe poorly, and one readable document is easier to keep
 * true than validation schemas scattered over handlers.
 */
import { packageVersion } from '../util/package-root.js';

const errorResponse = (description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
});

/** Responses every image route may give besides 200. */
const imageErrors = {
  '400': errorResponse('An option is invalid, or a multipart body holds no file parts.'),
  '401': errorResponse('The server needs a token (--token) and the request has no valid `Authorization: Bearer` header.'),
  '413': errorResponse('The body is over --max-body-mb, an image is over the pixel limit, or a request holds more images than --queue.'),
  '415': errorResponse('The body is neither image bytes nor multipart/form-data.'),
  '422': errorResponse('A single uploaded image cannot be decoded (empty, truncated, not an image); the message names the reason.'),
  '429': { ...errorResponse('The queue is full; retry after the Retry-After header\'s seconds.'), headers: { 'Retry-After': { schema: { type: 'integer' } } } },
  '503': errorResponse('The models are still loading (see /readyz), or the server is shutting down.'),
  '504': errorResponse('The request\'s deadline (--timeout-ms) passed.'),
};

const imageBody = {
  required: true,
  description: 'One image as the raw body (image/* or application/octet-stream), or several as the file parts of multipart/form-data (plain fields there may carry the options). A single image that fails answers with its error; in multipart each failed image is listed with its own `error`.',
  content: {
    'image/*': { schema: { type: 'string', contentMediaType: 'image/*' } },
    'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } },
    'multipart/form-data': { schema: { type: 'object', additionalProperties: { type: 'string', contentMediaType: 'image/*' } } },
  },
};

const idParam = { name: 'id', in: 'query', description: 'Id of a raw-body image in the response (default "image"); multipart parts are named by their file names.', schema: { type: 'string' } };

const ok = (ref: string) => ({ description: 'OK', content: { 'application/json': { schema: { $ref: `#/components/schemas/${ref}` } } } });

/** A per-image entry: the result, or that image's error (multipart only). */
const entryOf = (ref: string) => ({ oneOf: [{ $ref: `#/components/schemas/${ref}` }, { $ref: '#/components/schemas/ImageError' }] });

const textError = { '400': errorResponse('The JSON body is invalid.'), '401': imageErrors['401'], '413': errorResponse('The body or the list of texts is too large.'), '503': imageErrors['503'], '504': imageErrors['504'] };

export function openApiDocument(): object {
  return {
    openapi: '3.1.0',
    info: {
      title: 'img2prompt',
      version: packageVersion(),
      description: 'Predict the Stable Diffusion prompt behind an image: CLIP interrogation, prompt-bank kNN and the MiniLM metric. Images of concurrent requests share model batches.',
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'Only when the server was started with --token.' } },
      schemas: {
        Error: {
          type: 'object', required: ['error'],
          properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } } },
        },
        ImageError: {
          type: 'object', required: ['id', 'error'],
          properties: { id: { type: 'string' }, error: { type: 'object', properties: { code: { type: 'string', enum: ['undecodable_image', 'image_too_large'] }, message: { type: 'string' } } } },
        },
        Label: { type: 'object', properties: { bank: { type: 'string' }, label: { type: 'string' }, similarity: { type: 'number', description: 'Cosine of the label alone to the image.' } } },
        Interrogated: {
          type: 'object', required: ['id', 'prompt', 'similarity', 'labels'],
          properties: {
            id: { type: 'string' }, prompt: { type: 'string' },
            caption: { type: 'string', description: 'With a caption model only.' },
            similarity: { type: ['number', 'null'], description: 'Cosine of the prompt to the image; null with score=false.' },
            labels: { type: 'array', items: { $ref: '#/components/schemas/Label' } },
          },
        },
        InterrogateResponse: { type: 'object', properties: { model: { type: 'string' }, mode: { type: 'string' }, results: { type: 'array', items: entryOf('Interrogated') } } },
        Predicted: {
          type: 'object',
          properties: {
            id: { type: 'string' }, prompt: { type: ['string', 'null'] }, caption: { type: ['string', 'null'] },
            nearestPrompt: { type: ['object', 'null'], properties: { text: { type: 'string' }, similarity: { type: 'number' } } },
            memberPrompts: { type: 'object', description: 'The prompt each member stands for, where it has one (interrogator, captioner, knn).', additionalProperties: { type: 'string' } },
            members: { type: 'array', items: { type: 'string' }, description: 'Members whose vectors went into the ensemble for this image.' },
            fallback: { type: 'boolean' },
            vector: { type: 'array', items: { type: 'number' }, description: 'The 384-d MiniLM-space prediction; only with vector=1.' },
          },
        },
        PredictResponse: { type: 'object', properties: { model: { type: 'string' }, members: { type: 'array', items: { type: 'string' } }, results: { type: 'array', items: entryOf('Predicted') } } },
        ImageEmbedding: { type: 'object', properties: { id: { type: 'string' }, embedding: { type: 'array', items: { type: 'number' } } } },
        ImageEmbeddingResponse: { type: 'object', properties: { model: { type: 'string' }, dim: { type: 'integer' }, results: { type: 'array', items: entryOf('ImageEmbedding') } } },
        TextEmbeddingResponse: { type: 'object', properties: { model: { type: 'string' }, dim: { type: 'integer' }, embeddings: { type: 'array', items: { type: 'array', items: { type: 'number' } } } } },
        SimilarityResponse: { type: 'object', properties: { model: { type: 'string' }, similarity: { type: 'number' }, similarities: { type: 'array', items: { type: 'number' } } } },
      },
    },
    paths: {
      '/v1/interrogate': {
        post: {
          summary: 'CLIP Interrogator prompt, caption and chosen labels per image',
          security: [{ bearer: [] }, {}],
          parameters: [
            { name: 'mode', in: 'query', schema: { type: 'string', enum: ['fast', 'classic', 'best', 'negative'], default: 'fast' } },
            { name: 'maxFlavors', in: 'query', schema: { type: 'integer', minimum: 1 } },
            { name: 'score', in: 'query', description: 'Compute each prompt\'s similarity to its image (a text-tower pass).', schema: { type: 'boolean', default: true } },
            idParam,
          ],
          requestBody: imageBody,
          responses: { '200': ok('InterrogateResponse'), ...imageErrors },
        },
      },
      '/v1/predict': {
        post: {
          summary: 'The ensemble\'s prompt prediction per image',
          security: [{ bearer: [] }, {}],
          parameters: [{ name: 'vector', in: 'query', schema: { type: 'boolean', default: false } }, idParam],
          requestBody: imageBody,
          responses: { '200': ok('PredictResponse'), '404': errorResponse('The server runs with --no-predict.'), ...imageErrors },
        },
      },
      '/v1/embeddings/image': {
        post: {
          summary: 'CLIP image embeddings (unit vectors)',
          security: [{ bearer: [] }, {}],
          parameters: [idParam],
          requestBody: imageBody,
          responses: { '200': ok('ImageEmbeddingResponse'), ...imageErrors },
        },
      },
      '/v1/embeddings/text': {
        post: {
          summary: 'CLIP or MiniLM text embeddings',
          security: [{ bearer: [] }, {}],
          requestBody: {
            required: true,
            content: { 'application/json': { schema: { type: 'object', required: ['texts'], properties: { texts: { type: 'array', items: { type: 'string' }, minItems: 1 }, model: { type: 'string', enum: ['clip', 'minilm'], default: 'minilm' } } } } },
          },
          responses: { '200': ok('TextEmbeddingResponse'), ...textError },
        },
      },
      '/v1/similarity': {
        post: {
          summary: 'The competition metric\'s cosine (all-MiniLM-L6-v2) between prompts',
          security: [{ bearer: [] }, {}],
          requestBody: {
            required: true,
            content: {
              'application/json': {
                schema: {
                  oneOf: [
                    { type: 'object', required: ['a', 'b'], properties: { a: { type: 'string' }, b: { type: 'string' } } },
                    { type: 'object', required: ['a', 'b'], properties: { a: { type: 'array', items: { type: 'string' } }, b: { type: 'array', items: { type: 'string' } } } },
                  ],
                },
              },
            },
          },
          responses: { '200': ok('SimilarityResponse'), ...textError },
        },
      },
      '/healthz': { get: { summary: 'The process is up', responses: { '200': { description: 'OK' } } } },
      '/readyz': { get: { summary: 'Models and banks are loaded', responses: { '200': { description: 'Ready' }, '503': errorResponse('Still loading, failed to load, or shutting down.') } } },
      '/metrics': { get: { summary: 'Prometheus metrics', responses: { '200': { description: 'Text exposition format 0.0.4', content: { 'text/plain': { schema: { type: 'string' } } } } } } },
      '/openapi.json': { get: { summary: 'This document', responses: { '200': { description: 'OK' } } } },
    },
  };
}

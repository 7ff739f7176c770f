import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Logger } from '@deferrable/logging';
import Fastify, { LogController } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { hashToken } from '@deferrable/db';
import { requireRole } from './auth';
import type { ApiContext } from './context';
import { toApiError } from './errors';
import { healthRoutes } from './routes/health';
import { inspectRoutes } from './routes/inspect';
import { taskRoutes } from './routes/tasks';
import { tokenRoutes } from './routes/tokens';

export interface ApiOptions {
  logger: Logger;
  /** Requests per minute per token (or per address without one). */
  rateLimitPerMinute: number;
  /** Largest request body, in bytes. */
  bodyLimit: number;
}

export const API_PREFIX = '/api/v1';

/**
 * The HTTP API: versioned REST under /api/v1, checked by the same zod schemas that document it
 * (OpenAPI at /api/v1/openapi.json, a docs page at /api/v1/docs). Every route but health and the
 * docs needs a bearer token whose role allows it; every error has one shape (see errors.ts).
 */
export async function buildApi(ctx: ApiContext, opts: ApiOptions) {
  // No line per request (arguments must not reach the log; a busy service would flood it): errors are logged by the error handler.
  const app = Fastify({
    loggerInstance: opts.logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.bodyLimit,
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.decorateRequest('principal', null);
  // JSON only: any other body is refused with 415 before a route sees it.
  app.removeContentTypeParser('text/plain');

  app.setErrorHandler((err, req, reply) => {
    const { status, body, internal } = toApiError(err);
    if (internal) req.log.error({ err, method: req.method, route: req.routeOptions.url }, 'API request failed');
    return reply.code(status).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    const { status, body } = toApiError(Object.assign(new Error(`no route ${req.method} ${req.url.split('?')[0]}`), { statusCode: 404 }));
    return reply.code(status).send(body);
  });

  await app.register(helmet, {
    // The docs page loads its own scripts and styles from this server only.
    contentSecurityPolicy: {
      directives: { defaultSrc: ["'self'"], scriptSrc: ["'self'"], styleSrc: ["'self'", "'unsafe-inline'"], imgSrc: ["'self'", 'data:'] },
    },
  });
  await app.register(rateLimit, {
    max: opts.rateLimitPerMinute,
    timeWindow: 60_000,
    // Per token (its hash, never the secret), else per address.
    keyGenerator: (req) => (req.headers.authorization ? hashToken(req.headers.authorization).slice(0, 32) : req.ip),
    errorResponseBuilder: (_req, c) => ({
      statusCode: 429,
      message: `rate limit of ${c.max} requests per minute reached; retry in ${Math.ceil(c.ttl / 1000)} s`,
    }),
  });
  await app.register(swagger, {
    openapi: {
      info: { title: 'Deferrable API', version: '1.0.0', description: 'Enqueue and inspect deferrable tasks.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, { routePrefix: `${API_PREFIX}/docs`, staticCSP: true });

  // Authentication and roles, for every route that names a role.
  app.addHook('onRequest', async (req) => {
    const role = req.routeOptions.config.role;
    if (!role) return;
    req.principal = await ctx.tokens.authenticate(req.headers.authorization);
    requireRole(req.principal, role);
  });

  await app.register(
    async (api) => {
      await api.register(healthRoutes(ctx));
      await api.register(taskRoutes(ctx));
      await api.register(inspectRoutes(ctx));
      await api.register(tokenRoutes(ctx));
      api.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
    },
    { prefix: API_PREFIX },
  );
  // The conventional unversioned health path, for probes.
  await app.register(healthRoutes(ctx));
  return app;
}

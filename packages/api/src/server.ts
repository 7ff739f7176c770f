import cookie from '@fastify/cookie';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Logger } from '@deferrable/logging';
import Fastify, { type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { hashToken } from '@deferrable/db';
import { PermissionDeniedError } from '@deferrable/domain';
import { type ApiRole, requireRole } from './auth';
import { BOARD_PATH, type BoardOptions, boardPlugin } from './board';
import type { ApiContext } from './context';
import { toApiError } from './errors';
import { healthRoutes } from './routes/health';
import { inspectRoutes } from './routes/inspect';
import { taskRoutes } from './routes/tasks';
import { tokenRoutes } from './routes/tokens';
import { sessionRoutes } from './routes/session';
import { SESSION_COOKIE, sessionTokenId } from './session';

export interface ApiOptions {
  logger: Logger;
  /** Requests per minute per token (or per address without one). */
  rateLimitPerMinute: number;
  /** Largest request body, in bytes. */
  bodyLimit: number;
  /** Signs browser session cookies (at least 32 characters). */
  sessionSecret: string;
  /** How long a browser session lasts. */
  sessionTtlMs: number;
  /** Session cookies only over HTTPS (set behind TLS). */
  secureCookies: boolean;
  /** Bull Board at /queues; none without. */
  board?: BoardOptions;
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

  await app.register(cookie, { secret: opts.sessionSecret });
  // HTML forms (the login page) post url-encoded bodies.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  // Authentication and roles: a route's `config.role`; Bull Board: viewer to look, operator to act.
  app.addHook('onRequest', async (req, reply) => {
    try {
      // A redirect (to the login page) is the reply; anything else lets the request go on.
      return await authorize(req, reply);
    } catch (err) {
      // Answered here, not thrown: Bull Board's routes have an error handler of their own.
      const { status, body } = toApiError(err);
      return reply.code(status).send(body);
    }
  });
  const authorize = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    const safe = req.method === 'GET' || req.method === 'HEAD';
    const role: ApiRole | undefined = req.routeOptions.config?.role ?? (req.url.startsWith(BOARD_PATH) ? (safe ? 'viewer' : 'operator') : undefined);
    if (!role) return undefined;
    if (req.headers.authorization !== undefined) {
      req.principal = await ctx.tokens.authenticate(req.headers.authorization);
    } else {
      const cookieValue = req.cookies[SESSION_COOKIE];
      const unsigned = cookieValue ? req.unsignCookie(cookieValue) : null;
      const tokenId = sessionTokenId(unsigned?.valid ? unsigned.value : null);
      if (!tokenId) {
        // A person's browser goes to the login page; a program gets the error.
        if (safe && (req.headers.accept ?? '').includes('text/html')) return reply.redirect(`/login?next=${encodeURIComponent(req.url)}`, 302);
        req.principal = await ctx.tokens.authenticate(undefined);
        return undefined;
      }
      // SameSite=Strict keeps the cookie off other sites' requests; the origin check backs it up.
      if (!safe) assertSameOrigin(req.headers.origin ?? req.headers.referer, req.headers.host);
      req.principal = await ctx.tokens.authenticateSession(tokenId);
    }
    requireRole(req.principal, role);
    return undefined;
  };

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
  await app.register(sessionRoutes(ctx, { ttlMs: opts.sessionTtlMs, secure: opts.secureCookies }));
  if (opts.board) await app.register(boardPlugin(ctx.db.pool, opts.board));
  return app;
}

/** A state-changing request with a session cookie must come from a page of this server. */
function assertSameOrigin(origin: string | undefined, host: string | undefined): void {
  let sameHost = false;
  try {
    sameHost = origin !== undefined && host !== undefined && new URL(origin).host === host;
  } catch {
    sameHost = false;
  }
  if (!sameHost) throw new PermissionDeniedError('session', "a request from this server's own pages (cross-site request refused)");
}

import { buildApi, TokenVerifier } from '@deferrable/api';
import { TaskCatalog } from '@deferrable/catalog';
import { ApiConfigSchema, loadConfig } from '@deferrable/config';
import { createDb } from '@deferrable/db';
import { assertDatabaseMigrated, runApp } from '@deferrable/engine';
import { randomBytes } from 'node:crypto';
import { createLogger } from '@deferrable/logging';

void runApp('api', async () => {
  const config = loadConfig(ApiConfigSchema);
  const logger = createLogger({ name: 'api', level: config.LOG_LEVEL });
  const db = createDb({ url: config.DATABASE_URL, poolMax: 16, applicationName: 'deferrable-api' });
  const catalog = new TaskCatalog(db.pool, {
    allowUnregistered: config.DEFERRABLE_ALLOW_UNREGISTERED_TASKS,
    maxPayloadBytes: config.DEFERRABLE_MAX_PAYLOAD_BYTES,
  });
  const api = await buildApi(
    { db, catalog, tokens: new TokenVerifier(db.pool), healthThresholdMs: config.DEFERRABLE_HEALTH_THRESHOLD_MS },
    // The body may hold the largest arguments plus the request's other fields.
    {
      logger,
      rateLimitPerMinute: config.DEFERRABLE_API_RATE_LIMIT,
      bodyLimit: config.DEFERRABLE_MAX_PAYLOAD_BYTES + 16 * 1024,
      sessionSecret: config.DEFERRABLE_API_SESSION_SECRET ?? randomBytes(32).toString('base64url'),
      sessionTtlMs: config.DEFERRABLE_API_SESSION_TTL_MS,
      secureCookies: config.DEFERRABLE_API_SECURE_COOKIES,
      board: { redisUrl: config.REDIS_URL, prefix: config.DEFERRABLE_PREFIX },
    },
  );
  return {
    logger,
    preflight: () => assertDatabaseMigrated({ db }),
    db,
    start: async () => {
      const address = await api.listen({ port: config.DEFERRABLE_API_PORT, host: config.DEFERRABLE_API_HOST });
      logger.info({ address, docs: `${address}/api/v1/docs` }, 'api started');
    },
    stop: async () => {
      await api.close();
      await db.close();
    },
  };
});

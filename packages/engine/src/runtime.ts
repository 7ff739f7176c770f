import { DEV_KWARGS_KEY } from '@deferrable/config';
import { createDb, createKwargsCipher } from '@deferrable/db';
import { createLogger, type Logger } from '@deferrable/logging';
import { systemClock } from '@deferrable/triggers';
import type { Db } from '@deferrable/db';
import { startHealthServer, type HealthChecks, type HealthServer } from './health';
import type { ProcessJob } from './process-job';
import type { Resources } from './resources';

function readiness(app: App): HealthChecks {
  return {
    live: () => true,
    status: () => app.status?.() ?? {},
    async ready() {
      const job = app.job?.healthy() ?? { healthy: true, heartbeatAgeMs: 0 };
      let database = true;
      if (app.db) {
        database = await Promise.race([
          app.db.pool.query('SELECT 1').then(() => true, () => false),
          new Promise<boolean>((r) => setTimeout(() => r(false), 2000).unref()),
        ]);
      }
      return { ready: job.healthy && database, detail: { jobId: app.job?.id ?? null, heartbeatAgeMs: job.heartbeatAgeMs, database } };
    },
  };
}

export interface CommonConfig {
  DATABASE_URL: string;
  REDIS_URL: string;
  DEFERRABLE_PREFIX: string;
  LOG_LEVEL: string;
  DEFERRABLE_KWARGS_KEYS: string[];
  NODE_ENV?: string | undefined;
}

/** Builds the resources of one app process from its parsed configuration. */
export function createResources(config: CommonConfig, logger: Logger, poolMax = 10): Resources {
  // Refused outright when NODE_ENV=production (loadConfig); said at startup unless the
  // environment says it is development or test, so a deployment that set neither is told.
  if (config.DEFERRABLE_KWARGS_KEYS.includes(DEV_KWARGS_KEY) && config.NODE_ENV !== 'development' && config.NODE_ENV !== 'test') {
    logger.warn('trigger kwargs are encrypted with the public development key: set DEFERRABLE_KWARGS_KEYS outside development');
  }
  return {
    db: createDb({ url: config.DATABASE_URL, poolMax, applicationName: `deferrable-${logger.bindings().name ?? 'app'}` }),
    databaseUrl: config.DATABASE_URL,
    redisUrl: config.REDIS_URL,
    prefix: config.DEFERRABLE_PREFIX,
    clock: systemClock,
    logger,
    cipher: createKwargsCipher(config.DEFERRABLE_KWARGS_KEYS),
  };
}

/**
 * Runs an app: starts it, stops it gracefully on SIGTERM or SIGINT (a second signal exits at
 * once), and exits non-zero when startup fails.
 */
export interface App {
  logger: Logger;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Serve /livez and /readyz on this port (0: any free port; -1: none). */
  healthPort?: number;
  job?: ProcessJob;
  db?: Db;
  status?(): Record<string, unknown>;
}

export async function runApp(name: string, boot: () => Promise<App>): Promise<void> {
  let app: App;
  let health: HealthServer | null = null;
  try {
    app = await boot();
    await app.start();
    if (app.healthPort !== undefined && app.healthPort >= 0) {
      health = await startHealthServer(app.healthPort, readiness(app));
      app.logger.info({ healthPort: health.port }, `${name} health endpoints on :${health.port} (/livez, /readyz)`);
    }
  } catch (err) {
    const fallback = createLogger({ name });
    fallback.fatal({ err }, `${name} failed to start`);
    process.exit(1);
  }
  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) {
      app.logger.warn({ signal }, 'second signal; exiting now');
      process.exit(1);
    }
    stopping = true;
    app.logger.info({ signal }, `${name} stopping`);
    Promise.all([health?.close(), app.stop()]).then(
      () => process.exit(0),
      (err: unknown) => {
        app.logger.error({ err }, `${name} did not stop cleanly`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}

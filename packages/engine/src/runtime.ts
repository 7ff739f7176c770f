import { ConfigError } from '@deferrable/domain';
import { DEV_KWARGS_KEY, type HealthSettings } from '@deferrable/config';
import { assertMigrated, createDb, createKwargsCipher } from '@deferrable/db';
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
          app.db.pool.query('SELECT 1').then(
            () => true,
            () => false,
          ),
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

/** The preflight of the apps that do not migrate (worker, triggerer): every migration this build ships is applied. */
export async function assertDatabaseMigrated(res: Pick<Resources, 'db'>): Promise<void> {
  await assertMigrated(res.db.pool);
}

/** One app process (scheduler, triggerer, worker) as runApp and startApp drive it. */
export interface App {
  logger: Logger;
  /** Checks made before anything is registered or consumed (the database schema is migrated). */
  preflight?(): Promise<void>;
  /** Registers the job row and starts consuming. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Serve /livez, /readyz and /status; none when absent or its port is -1. */
  health?: HealthSettings;
  job?: ProcessJob;
  db?: Db;
  status?(): Record<string, unknown>;
}

export interface StartedApp {
  /** The port the health endpoints are served on, null when there are none. */
  healthPort: number | null;
  stop(): Promise<void>;
}

/**
 * Starts an app in the order that leaves nothing behind when a step fails: the preflight checks,
 * then the health server (a busy port fails here, before any job row exists), then the app
 * itself. When the app fails after registering its job row, the row is ended as 'failed' (it would
 * otherwise read `running` for ever) and what it opened is closed before the error is thrown.
 */
export async function startApp(name: string, app: App): Promise<StartedApp> {
  await app.preflight?.();
  let health: HealthServer | null = null;
  if (app.health && app.health.port >= 0) {
    health = await listenForHealth(name, app, app.health);
    app.logger.info(
      { healthPort: health.port, healthHost: app.health.host },
      `${name} health endpoints on ${app.health.host}:${health.port} (/livez, /readyz, /status)`,
    );
  }
  try {
    await app.start();
  } catch (err) {
    await app.job?.stop('failed');
    await app.stop().catch((stopErr: unknown) => app.logger.warn({ err: stopErr }, `${name} did not stop cleanly after a failed start`));
    await health?.close();
    throw err;
  }
  return {
    healthPort: health?.port ?? null,
    stop: async () => {
      await Promise.all([health?.close(), app.stop()]);
    },
  };
}

/**
 * Binds the health server. A port the operator chose that is in use is a configuration error; the
 * default port in use (another app of this kind on this host) falls back to a free port, logged.
 */
async function listenForHealth(name: string, app: App, settings: HealthSettings): Promise<HealthServer> {
  try {
    return await startHealthServer(settings.port, readiness(app), settings.host);
  } catch (err) {
    if ((err as { code?: string }).code !== 'EADDRINUSE') throw err;
    if (settings.portFixed) {
      throw new ConfigError(
        'DEFERRABLE_HEALTH_PORT',
        `port ${settings.port} on ${settings.host} is in use (another process on this host?): set another port, 0 for any free port, or -1 for no health endpoints`,
      );
    }
    const server = await startHealthServer(0, readiness(app), settings.host);
    app.logger.warn(
      { defaultHealthPort: settings.port, healthPort: server.port },
      `${name}'s default health port ${settings.port} is in use (another app on this host?); serving health endpoints on free port ${server.port}`,
    );
    return server;
  }
}

/**
 * Runs an app: starts it (startApp), stops it gracefully on SIGTERM or SIGINT (a second signal
 * exits at once), and exits non-zero when startup fails, saying why.
 */
export async function runApp(name: string, boot: () => Promise<App>): Promise<void> {
  let app: App;
  let started: StartedApp;
  try {
    app = await boot();
    started = await startApp(name, app);
  } catch (err) {
    const fallback = createLogger({ name });
    const reason = err instanceof Error ? err.message : String(err);
    fallback.fatal({ err }, `${name} failed to start: ${reason}`);
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
    started.stop().then(
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

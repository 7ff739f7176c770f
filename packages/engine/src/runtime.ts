import { createDb, createKwargsCipher } from '@deferrable/db';
import { createLogger, type Logger } from '@deferrable/logging';
import { systemClock } from '@deferrable/triggers';
import type { Resources } from './resources';

export interface CommonConfig {
  DATABASE_URL: string;
  REDIS_URL: string;
  DEFERRABLE_PREFIX: string;
  LOG_LEVEL: string;
  DEFERRABLE_KWARGS_KEYS: string[];
}

/** Builds the resources of one app process from its parsed configuration. */
export function createResources(config: CommonConfig, logger: Logger, poolMax = 10): Resources {
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
export async function runApp(
  name: string,
  boot: () => Promise<{ logger: Logger; start(): Promise<void>; stop(): Promise<void> }>,
): Promise<void> {
  let app: Awaited<ReturnType<typeof boot>>;
  try {
    app = await boot();
    await app.start();
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
    app.stop().then(
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

import { loadConfig, SchedulerConfigSchema } from '@deferrable/config';
import { migrate } from '@deferrable/db';
import { createResources, runApp, Scheduler } from '@deferrable/engine';
import { createLogger } from '@deferrable/logging';
import { enqueueTask, TaskCatalog } from '@deferrable/catalog';

void runApp('scheduler', async () => {
  const config = loadConfig(SchedulerConfigSchema);
  const logger = createLogger({ name: 'scheduler', level: config.LOG_LEVEL });
  // Safe when several schedulers start at once: the migrator takes an advisory lock.
  const migrated = await migrate(config.DATABASE_URL);
  if (migrated.applied.length) logger.info({ applied: migrated.applied }, 'migrations applied');
  const res = createResources(config, logger);
  // Task requests are checked against the task catalog, as every entry checks them.
  const catalog = new TaskCatalog(res.db.pool, {
    allowUnregistered: config.DEFERRABLE_ALLOW_UNREGISTERED_TASKS,
  });
  const scheduler = new Scheduler(res, {
    pollMs: config.DEFERRABLE_POLL_MS,
    dispatchBatch: config.DEFERRABLE_DISPATCH_BATCH,
    dispatchAhead: config.DEFERRABLE_DISPATCH_AHEAD,
    reapAfterMs: config.DEFERRABLE_REAP_AFTER_MS,
    redispatchAfterMs: config.DEFERRABLE_REDISPATCH_AFTER_MS,
    cleanupIntervalMs: config.DEFERRABLE_CLEANUP_INTERVAL_MS,
    retentionMs: config.DEFERRABLE_RETENTION_MS,
    jobRetentionMs: config.DEFERRABLE_JOB_RETENTION_MS,
    rejectionRetentionMs: config.DEFERRABLE_REJECTION_RETENTION_MS,
    retentionIntervalMs: config.DEFERRABLE_RETENTION_INTERVAL_MS,
    eventConcurrency: config.DEFERRABLE_EVENT_CONCURRENCY,
    heartbeatMs: 2000,
    enqueue: (request, { actor }) => enqueueTask(res.db.pool, catalog, request, { actor }),
  });
  return {
    logger,
    healthPort: config.DEFERRABLE_HEALTH_PORT,
    job: scheduler.job,
    status: () => scheduler.status(),
    db: res.db,
    start: () => scheduler.start(),
    stop: async () => {
      await scheduler.stop();
      await res.db.close();
    },
  };
});

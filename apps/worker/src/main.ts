import { DEFAULT_HEALTH_PORTS, healthSettings, loadConfig, WorkerConfigSchema } from '@deferrable/config';
import { assertDatabaseMigrated, createResources, loadModules, runApp, TaskRegistry, TaskWorker } from '@deferrable/engine';
import { createLogger } from '@deferrable/logging';
import { builtinTriggerRegistry } from '@deferrable/triggers';

void runApp('worker', async () => {
  const config = loadConfig(WorkerConfigSchema);
  const logger = createLogger({ name: 'worker', level: config.LOG_LEVEL });
  const modules = loadModules(config.DEFERRABLE_MODULES);
  const triggers = builtinTriggerRegistry();
  for (const t of modules.triggers) triggers.register(t);
  // Steps are recorded in batches (at most one statement in flight per kind), so the pool need
  // not grow with the slots; failures and rejections take single connections.
  const res = createResources(config, logger, Math.min(config.DEFERRABLE_WORKER_SLOTS, 8) + 4);
  const worker = new TaskWorker(res, {
    tasks: new TaskRegistry(modules.tasks),
    triggers,
    slots: config.DEFERRABLE_WORKER_SLOTS,
    queues: config.DEFERRABLE_WORKER_QUEUES,
    heartbeatMs: config.DEFERRABLE_HEARTBEAT_MS,
    maxPayloadBytes: config.DEFERRABLE_MAX_PAYLOAD_BYTES,
    shutdownGraceMs: config.DEFERRABLE_SHUTDOWN_GRACE_MS,
  });
  return {
    logger,
    // Before anything is registered: an unmigrated database is named, with what to run.
    preflight: () => assertDatabaseMigrated(res),
    health: healthSettings(config, DEFAULT_HEALTH_PORTS.worker),
    job: worker.job,
    db: res.db,
    start: () => worker.start(),
    stop: async () => {
      await worker.stop();
      await res.db.close();
    },
  };
});

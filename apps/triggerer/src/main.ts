import { DEFAULT_HEALTH_PORTS, healthSettings, loadConfig, TriggererConfigSchema } from '@deferrable/config';
import { assertDatabaseMigrated, createResources, loadModules, runApp, Triggerer } from '@deferrable/engine';
import { createLogger } from '@deferrable/logging';
import { builtinTriggerRegistry } from '@deferrable/triggers';

void runApp('triggerer', async () => {
  const config = loadConfig(TriggererConfigSchema);
  const logger = createLogger({ name: 'triggerer', level: config.LOG_LEVEL });
  const triggers = builtinTriggerRegistry();
  for (const t of loadModules(config.DEFERRABLE_MODULES).triggers) triggers.register(t);
  const res = createResources(config, logger);
  const triggerer = new Triggerer(res, {
    triggers,
    capacity: config.DEFERRABLE_TRIGGERER_CAPACITY,
    queues: config.DEFERRABLE_TRIGGERER_QUEUES,
    heartbeatMs: config.DEFERRABLE_HEARTBEAT_MS,
    healthThresholdMs: config.DEFERRABLE_HEALTH_THRESHOLD_MS,
    claimIntervalMs: config.DEFERRABLE_CLAIM_INTERVAL_MS,
    syncIntervalMs: config.DEFERRABLE_SYNC_INTERVAL_MS,
    blockWarnMs: config.DEFERRABLE_BLOCK_WARN_MS,
    claimBatch: config.DEFERRABLE_CLAIM_BATCH,
    shutdownGraceMs: config.DEFERRABLE_SHUTDOWN_GRACE_MS,
    maxPayloadBytes: config.DEFERRABLE_MAX_PAYLOAD_BYTES,
  });
  return {
    logger,
    // Before anything is registered: an unmigrated database is named, with what to run.
    preflight: () => assertDatabaseMigrated(res),
    health: healthSettings(config, DEFAULT_HEALTH_PORTS.triggerer),
    job: triggerer.job,
    status: () => triggerer.status(),
    db: res.db,
    start: () => triggerer.start(),
    stop: async () => {
      await triggerer.stop();
      await res.db.close();
    },
  };
});

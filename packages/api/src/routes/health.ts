import { isTransientDbError, runningJobs, unfiredTriggerCount } from '@deferrable/db';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ApiContext } from '../context';

const Status = z.enum(['healthy', 'unhealthy']);
const Component = z.object({
  /** null: no process of this kind is running (Airflow shows none for a triggerer never started). */
  status: Status.nullable(),
  latestHeartbeat: z.string().nullable(),
  instances: z.array(z.object({ status: Status, latestHeartbeat: z.string() })),
});
const HealthSchema = z.object({
  status: Status,
  components: z.object({ database: z.object({ status: Status }), scheduler: Component, triggerer: Component, worker: Component }),
  warnings: z.array(z.string()),
});
type Health = z.infer<typeof HealthSchema>;
type ComponentHealth = z.infer<typeof Component>;

const KINDS = ['scheduler', 'triggerer', 'worker'] as const;

/**
 * GET /health: one status per component from the job rows' heartbeats, and a warning when
 * triggers wait while no healthy triggerer is alive. Public; it shows statuses and heartbeat
 * times only (no hosts, ids or counts).
 */
export function healthRoutes(ctx: ApiContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/health',
      { schema: { summary: 'Health of each component (no token needed)', response: { 200: HealthSchema, 503: HealthSchema } } },
      async (_req, reply) => {
        let jobs: Awaited<ReturnType<typeof runningJobs>>;
        let waitingTriggers: number;
        try {
          [jobs, waitingTriggers] = await Promise.all([runningJobs(ctx.db.pool), unfiredTriggerCount(ctx.db.pool)]);
        } catch (err) {
          if (!isTransientDbError(err)) throw err;
          const none: ComponentHealth = { status: null, latestHeartbeat: null, instances: [] };
          const down: Health = {
            status: 'unhealthy',
            components: { database: { status: 'unhealthy' }, scheduler: none, triggerer: none, worker: none },
            warnings: ['the database is unreachable'],
          };
          return reply.code(503).send(down);
        }
        const component = (kind: (typeof KINDS)[number]): ComponentHealth => {
          const mine = jobs.filter((j) => j.job_type === kind);
          const instances = mine.map((j) => ({
            status: j.heartbeat_age_ms <= ctx.healthThresholdMs ? ('healthy' as const) : ('unhealthy' as const),
            latestHeartbeat: j.latest_heartbeat.toISOString(),
          }));
          const latest = mine.reduce<Date | null>((a, j) => (a && a > j.latest_heartbeat ? a : j.latest_heartbeat), null);
          return {
            status: instances.length === 0 ? null : instances.some((i) => i.status === 'healthy') ? 'healthy' : 'unhealthy',
            latestHeartbeat: latest ? latest.toISOString() : null,
            instances,
          };
        };
        const components = {
          database: { status: 'healthy' as const },
          scheduler: component('scheduler'),
          triggerer: component('triggerer'),
          worker: component('worker'),
        };
        const warnings: string[] = [];
        if (waitingTriggers > 0 && components.triggerer.status !== 'healthy')
          warnings.push('triggers are waiting and no healthy triggerer is alive: start a triggerer');
        if (components.scheduler.status !== 'healthy') warnings.push('no healthy scheduler is alive: nothing is dispatched or resumed');
        const unhealthy = KINDS.some((k) => components[k].status === 'unhealthy') || warnings.length > 0;
        const body: Health = { status: unhealthy ? 'unhealthy' : 'healthy', components, warnings };
        return reply.code(200).send(body);
      },
    );
  };
}

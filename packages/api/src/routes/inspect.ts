import { listJobs, listTaskTypes, listTriggers } from '@deferrable/db';
import { QueueNameSchema } from '@deferrable/domain';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ApiContext } from '../context';
import { decodeCursor, encodeCursor } from '../views';

const iso = (d: Date | null) => (d ? d.toISOString() : null);

const TaskTypeSchema = z.object({
  name: z.string(),
  argsSchema: z.unknown().nullable(),
  queue: z.string(),
  queues: z.array(z.string()),
  priority: z.number().int(),
  maxTries: z.number().int(),
  retry: z.object({ delayMs: z.number(), backoff: z.number(), maxDelayMs: z.number() }),
  executionTimeoutMs: z.number().nullable(),
  callbacks: z.array(z.string()),
  definitionHash: z.string(),
  updatedAt: z.string(),
});

const TriggerSchema = z.object({
  id: z.uuid(),
  type: z.string(),
  state: z.enum(['waiting', 'running', 'fired']),
  queue: z.string().nullable(),
  triggererId: z.string().nullable(),
  taskInstanceId: z.string().nullable(),
  taskName: z.string().nullable(),
  waitingSince: z.string(),
  firedAt: z.string().nullable(),
  timeoutAt: z.string().nullable(),
});

const JobSchema = z.object({
  id: z.uuid(),
  type: z.string(),
  hostname: z.string(),
  pid: z.number().int(),
  state: z.string(),
  capacity: z.number().int(),
  load: z.number().int(),
  queues: z.array(z.string()),
  startedAt: z.string(),
  endedAt: z.string().nullable(),
  latestHeartbeat: z.string(),
  heartbeatAgeMs: z.number(),
  healthy: z.boolean(),
});

/** Read-only views: the task catalog, triggers with their tasks, process jobs. */
export function inspectRoutes(ctx: ApiContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/task-types',
      {
        config: { role: 'viewer' },
        schema: { summary: 'The task catalog, with argument JSON Schemas', response: { 200: z.object({ items: z.array(TaskTypeSchema) }) } },
      },
      async () => ({
        items: (await listTaskTypes(ctx.db.pool)).map((t) => ({
          name: t.name,
          argsSchema: t.args_schema ?? null,
          queue: t.queue,
          queues: t.queues,
          priority: t.priority,
          maxTries: t.max_tries,
          retry: { delayMs: t.retry_delay_ms, backoff: t.retry_backoff, maxDelayMs: t.retry_max_delay_ms },
          executionTimeoutMs: t.execution_timeout_ms,
          callbacks: t.callbacks,
          definitionHash: t.definition_hash,
          updatedAt: t.updated_at.toISOString(),
        })),
      }),
    );

    app.get(
      '/triggers',
      {
        config: { role: 'viewer' },
        schema: {
          summary: 'Triggers and the task waiting on each, oldest first (kwargs are never returned)',
          querystring: z
            .object({
              state: z.enum(['waiting', 'running', 'fired']).optional(),
              triggerer: z.uuid().optional(),
              type: z.string().min(1).max(200).optional(),
              queue: QueueNameSchema.optional(),
              cursor: z.string().max(200).optional(),
              limit: z.coerce.number().int().min(1).max(500).default(100),
            })
            .strict(),
          response: { 200: z.object({ items: z.array(TriggerSchema), nextCursor: z.string().nullable() }) },
        },
      },
      async (req) => {
        const q = req.query;
        const rows = await listTriggers(ctx.db.pool, {
          state: q.state,
          triggererId: q.triggerer,
          type: q.type,
          queue: q.queue,
          after: decodeCursor(q.cursor),
          limit: q.limit + 1,
        });
        const page = rows.slice(0, q.limit);
        const last = page.at(-1);
        return {
          items: page.map((t) => ({
            id: t.id,
            type: t.type,
            state: t.state,
            queue: t.queue,
            triggererId: t.triggerer_id,
            taskInstanceId: t.task_instance_id,
            taskName: t.task_name,
            waitingSince: t.created_at.toISOString(),
            firedAt: iso(t.fired_at),
            timeoutAt: iso(t.timeout_at),
          })),
          nextCursor: rows.length > q.limit && last ? encodeCursor({ createdAt: last.created_at, id: last.id }) : null,
        };
      },
    );

    app.get(
      '/jobs',
      {
        config: { role: 'viewer' },
        schema: {
          summary: 'Scheduler, triggerer and worker processes: heartbeat age, load, capacity',
          querystring: z
            .object({ type: z.enum(['scheduler', 'triggerer', 'worker']).optional(), limit: z.coerce.number().int().min(1).max(1000).default(100) })
            .strict(),
          response: { 200: z.object({ items: z.array(JobSchema) }) },
        },
      },
      async (req) => ({
        items: (await listJobs(ctx.db.pool, { jobType: req.query.type, limit: req.query.limit })).map((j) => ({
          id: j.id,
          type: j.job_type,
          hostname: j.hostname,
          pid: j.pid,
          state: j.state,
          capacity: j.capacity,
          load: j.load,
          queues: j.queues,
          startedAt: j.started_at.toISOString(),
          endedAt: iso(j.ended_at),
          latestHeartbeat: j.latest_heartbeat.toISOString(),
          heartbeatAgeMs: Math.round(j.heartbeat_age_ms),
          healthy: j.state === 'running' && j.heartbeat_age_ms <= ctx.healthThresholdMs,
        })),
      }),
    );
  };
}

import { enqueueTask } from '@deferrable/catalog';
import { cancelTask, listTasks, taskTimeline } from '@deferrable/db';
import {
  EnqueueRequestSchema,
  InvalidInputError,
  type EnqueueRequest,
  type Json,
  InvalidTransitionError,
  TASK_STATES,
  TaskNameSchema,
  QueueNameSchema,
  TaskNotFoundError,
} from '@deferrable/domain';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ApiContext } from '../context';
import { decodeCursor, encodeCursor, readTask, type TaskView, TaskViewSchema } from '../views';

const IdParams = z.object({ id: z.uuid() });

/** The idempotency key of the task that retries a failed one. */
const retryKey = (failedId: string) => `retry:${failedId}`;
const TimelineSchema = z.array(
  z.object({ tryNumber: z.number().int(), from: z.string().nullable(), to: z.string(), actor: z.string().nullable(), at: z.string() }),
);
const TaskDetailSchema = TaskViewSchema.extend({ timeline: TimelineSchema });
const ListQuery = z
  .object({
    state: z.enum(TASK_STATES).optional(),
    task: TaskNameSchema.optional(),
    queue: QueueNameSchema.optional(),
    since: z.iso.datetime({ offset: true }).optional(),
    cursor: z.string().max(200).optional(),
    limit: z.coerce.number().int().min(1).max(500).default(50),
  })
  .strict();
const ListItem = TaskViewSchema.pick({
  id: true,
  task: true,
  state: true,
  tryNumber: true,
  maxTries: true,
  queue: true,
  priority: true,
  idempotencyKey: true,
  createdAt: true,
  endedAt: true,
}).extend({
  triggerId: z.string().nullable(),
  updatedAt: z.string(),
});

/** Enqueues (checked against the catalog) and reads the task back. */
async function enqueueAndRead(ctx: ApiContext, request: EnqueueRequest, caller: string): Promise<{ created: boolean; view: TaskView }> {
  const { id, created } = await enqueueTask(ctx.db.pool, ctx.catalog, request, { actor: `api:${caller}` });
  const view = await readTask(ctx.db, id);
  if (!view) throw new TaskNotFoundError(id);
  return { created, view };
}

/** /tasks: enqueue (checked against the catalog, idempotent), read, list, cancel. */
export function taskRoutes(ctx: ApiContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      '/tasks',
      {
        config: { role: 'operator' },
        schema: {
          summary: 'Enqueue a task',
          description:
            'Checked against the task catalog. With an idempotency key (body field or Idempotency-Key header): 201 when new, 200 with the same task when the same request is repeated, 409 when the key was used by another request.',
          headers: z.object({ 'idempotency-key': z.string().min(1).max(200).optional() }).loose(),
          body: EnqueueRequestSchema,
          response: { 200: TaskViewSchema, 201: TaskViewSchema },
        },
      },
      async (req, reply) => {
        const header = req.headers['idempotency-key'];
        if (header !== undefined && req.body.idempotencyKey !== undefined && header !== req.body.idempotencyKey) {
          throw new InvalidInputError('request', [{ path: 'headers.idempotency-key', message: 'differs from the body field idempotencyKey' }]);
        }
        const request = header === undefined ? req.body : { ...req.body, idempotencyKey: header };
        const { created, view } = await enqueueAndRead(ctx, request, req.principal!.name);
        return reply.code(created ? 201 : 200).send(view);
      },
    );

    app.get(
      '/tasks/:id',
      {
        config: { role: 'viewer' },
        schema: { summary: 'A task instance, its trigger and its timeline', params: IdParams, response: { 200: TaskDetailSchema } },
      },
      async (req) => {
        const view = await readTask(ctx.db, req.params.id);
        if (!view) throw new TaskNotFoundError(req.params.id);
        const timeline = (await taskTimeline(ctx.db.pool, view.id)).map((t) => ({
          tryNumber: t.try_number,
          from: t.from_state,
          to: t.to_state,
          actor: t.actor,
          at: t.at.toISOString(),
        }));
        return { ...view, timeline };
      },
    );

    app.get(
      '/tasks',
      {
        config: { role: 'viewer' },
        schema: {
          summary: 'Task instances, newest first',
          description: "Keyset pagination: pass the previous page's nextCursor as cursor.",
          querystring: ListQuery,
          response: { 200: z.object({ items: z.array(ListItem), nextCursor: z.string().nullable() }) },
        },
      },
      async (req) => {
        const q = req.query;
        const rows = await listTasks(ctx.db.pool, {
          state: q.state,
          task: q.task,
          queue: q.queue,
          since: q.since ? new Date(q.since) : undefined,
          after: decodeCursor(q.cursor),
          limit: q.limit + 1,
        });
        const page = rows.slice(0, q.limit);
        const last = page.at(-1);
        return {
          items: page.map((r) => ({
            id: r.id,
            task: r.task_name,
            state: r.state,
            tryNumber: r.try_number,
            maxTries: r.max_tries,
            queue: r.queue,
            priority: r.priority,
            idempotencyKey: r.idempotency_key,
            triggerId: r.trigger_id,
            createdAt: r.created_at.toISOString(),
            updatedAt: r.updated_at.toISOString(),
            endedAt: r.ended_at ? r.ended_at.toISOString() : null,
          })),
          nextCursor: rows.length > q.limit && last ? encodeCursor({ createdAt: last.created_at, id: last.id }) : null,
        };
      },
    );

    app.post(
      '/tasks/:id/retry',
      {
        config: { role: 'operator' },
        schema: {
          summary: 'Run a failed task again',
          description:
            "Enqueues a new task instance with the failed one's task, arguments and options (checked against the catalog again); a finished task never changes state. Idempotent: 201 with the new task, then 200 with the same one. 409 when the task has not failed.",
          params: IdParams,
          response: { 200: TaskViewSchema, 201: TaskViewSchema },
        },
      },
      async (req, reply) => {
        const t = await ctx.db.prisma.taskInstance.findUnique({ where: { id: req.params.id } });
        if (!t) throw new TaskNotFoundError(req.params.id);
        if (t.state !== 'failed') throw new InvalidTransitionError('retry', t.state, 'scheduled');
        const request = {
          task: t.taskName,
          args: t.args as Json,
          queue: t.queue,
          priority: t.priority,
          maxTries: t.maxTries,
          retry: { delayMs: t.retryDelayMs, backoff: t.retryBackoff, maxDelayMs: t.retryMaxDelayMs },
          ...(t.executionTimeoutMs === null ? {} : { executionTimeoutMs: t.executionTimeoutMs }),
          // The key links the new task to the failed one and makes a repeated retry return it.
          idempotencyKey: retryKey(t.id),
        };
        const { created, view } = await enqueueAndRead(ctx, request, req.principal!.name);
        return reply.code(created ? 201 : 200).send(view);
      },
    );

    app.post(
      '/tasks/:id/cancel',
      {
        config: { role: 'operator' },
        schema: {
          summary: 'Cancel a task that has not ended',
          description: '409 when the task has already ended.',
          params: IdParams,
          response: { 200: TaskViewSchema },
        },
      },
      async (req) => {
        const cancelled = await cancelTask(ctx.db.pool, req.params.id, `api:${req.principal!.name}`);
        const view = await readTask(ctx.db, req.params.id);
        if (!view) throw new TaskNotFoundError(req.params.id);
        if (!cancelled) throw new InvalidTransitionError('cancel', view.state, 'cancelled');
        return view;
      },
    );
  };
}

import { type Db, type Keyset, taskInstanceView } from '@deferrable/db';
import { InvalidInputError } from '@deferrable/domain';
import { z } from 'zod';

/** A task instance as the API shows it. */
export const TaskViewSchema = z.object({
  id: z.uuid(),
  task: z.string(),
  state: z.string(),
  tryNumber: z.number().int(),
  maxTries: z.number().int(),
  queue: z.string(),
  priority: z.number().int(),
  idempotencyKey: z.string().nullable(),
  nextMethod: z.string().nullable(),
  result: z.unknown().nullable(),
  error: z.unknown().nullable(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  endedAt: z.string().nullable(),
  trigger: z
    .object({
      id: z.uuid(),
      type: z.string(),
      queue: z.string().nullable(),
      triggererId: z.string().nullable(),
      waitingSince: z.string(),
      timeoutAt: z.string().nullable(),
    })
    .nullable(),
});
export type TaskView = z.infer<typeof TaskViewSchema>;

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** The task instance with its trigger (never the trigger's kwargs), or null. */
export async function readTask(db: Db, id: string): Promise<TaskView | null> {
  const t = await db.prisma.taskInstance.findUnique({
    where: { id },
    include: { trigger: { select: { id: true, classpath: true, queue: true, triggererId: true, createdAt: true } } },
  });
  if (!t) return null;
  const v = taskInstanceView(t);
  return {
    ...v,
    priority: t.priority,
    idempotencyKey: t.idempotencyKey,
    createdAt: v.createdAt.toISOString(),
    startedAt: iso(v.startedAt),
    endedAt: iso(v.endedAt),
    trigger: t.trigger
      ? {
          id: t.trigger.id,
          type: t.trigger.classpath,
          queue: t.trigger.queue,
          triggererId: t.trigger.triggererId,
          waitingSince: t.trigger.createdAt.toISOString(),
          timeoutAt: iso(t.triggerTimeout),
        }
      : null,
  };
}

/** An opaque page cursor: the (created_at, id) of the last row shown. */
export function encodeCursor(k: Keyset): string {
  return Buffer.from(JSON.stringify([k.createdAt.toISOString(), k.id])).toString('base64url');
}

const CursorSchema = z.tuple([z.iso.datetime(), z.uuid()]);

/** Decodes a cursor from `encodeCursor`; anything else is an INVALID_INPUT naming `cursor`. */
export function decodeCursor(cursor: string | undefined): Keyset | undefined {
  if (cursor === undefined) return undefined;
  try {
    const [at, id] = CursorSchema.parse(JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')));
    return { createdAt: new Date(at), id };
  } catch {
    throw new InvalidInputError('query', [{ path: 'query.cursor', message: 'not a cursor this API returned' }]);
  }
}

import type { Json, RecordedError, TaskState } from '@deferrable/domain';
import type { TaskInstance } from './generated/prisma/client';

/** A task instance as the SDK and the API show it. */
export interface TaskInstanceView {
  id: string;
  task: string;
  state: TaskState;
  tryNumber: number;
  maxTries: number;
  queue: string;
  result: Json | null;
  error: RecordedError | null;
  nextMethod: string | null;
  triggerId: string | null;
  createdAt: Date;
  startedAt: Date | null;
  endedAt: Date | null;
}

/** The view of a task instance row read with Prisma. */
export function taskInstanceView(t: TaskInstance): TaskInstanceView {
  return {
    id: t.id,
    task: t.taskName,
    state: t.state,
    tryNumber: t.tryNumber,
    maxTries: t.maxTries,
    queue: t.queue,
    result: (t.result ?? null) as Json | null,
    error: (t.error ?? null) as RecordedError | null,
    nextMethod: t.nextMethod,
    triggerId: t.triggerId,
    createdAt: t.createdAt,
    startedAt: t.startedAt,
    endedAt: t.endedAt,
  };
}

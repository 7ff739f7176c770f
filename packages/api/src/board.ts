import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queryable } from '@deferrable/db';
import { bullPrefix, producerConnection, taskDispatch, taskRequests, triggerEvents } from '@deferrable/queues';
import { Queue } from 'bullmq';
import type { FastifyPluginAsync } from 'fastify';

export const BOARD_PATH = '/queues';

/** Where the deployment's queues are. */
export interface BoardOptions {
  redisUrl: string;
  prefix: string;
}

/** Task queues the catalog names (each type's queue and the others it allows), plus `default`. */
async function taskQueues(db: Queryable): Promise<string[]> {
  const { rows } = await db.query<{ q: string }>(
    "SELECT DISTINCT q FROM (SELECT queue AS q FROM task_type UNION SELECT unnest(queues) FROM task_type UNION SELECT 'default') s ORDER BY q",
  );
  return rows.map((r) => r.q);
}

/**
 * Bull Board at /queues, showing every Deferrable queue: task dispatch per task queue (from the
 * catalog, looked up again at most every 10 s), trigger events and task requests. Who may see it
 * and who may act in it is decided by the API's own authentication (see server.ts).
 */
export function boardPlugin(db: Queryable, opts: BoardOptions): FastifyPluginAsync {
  return async (app) => {
    const connection = producerConnection(opts.redisUrl);
    const prefix = bullPrefix(opts.prefix);
    const open = new Map<string, Queue>();
    const queue = (name: string) => {
      let q = open.get(name);
      if (!q) {
        q = new Queue(name, { connection, prefix });
        open.set(name, q);
      }
      return q;
    };
    const serverAdapter = new FastifyAdapter();
    serverAdapter.setBasePath(BOARD_PATH);
    const board = createBullBoard({ queues: [], serverAdapter, options: { uiConfig: { boardTitle: 'Deferrable' } } });
    let lookedUp = 0;
    const refresh = async () => {
      if (Date.now() - lookedUp < 10_000) return;
      lookedUp = Date.now();
      const names = [...(await taskQueues(db)).map((q) => taskDispatch.queueName(q)), triggerEvents.queueName(), taskRequests.queueName()];
      board.replaceQueues(names.map((n) => new BullMQAdapter(queue(n))));
    };
    await refresh();
    app.addHook('onRequest', async (req) => {
      if (req.url.startsWith(BOARD_PATH)) await refresh();
    });
    app.addHook('onClose', async () => {
      await Promise.all([...open.values()].map((q) => q.close()));
    });
    await app.register(serverAdapter.registerPlugin(), { prefix: BOARD_PATH });
  };
}

import { parseArgs } from 'node:util';
import { z } from 'zod';
import { lifecycle } from './lifecycle';
import { teardownAll, teardownOnSignals } from './teardown';

/**
 * `npm run bench -- <benchmark> [options]`. Progress goes to stderr; stdout carries the human
 * report and, as its very last line, one JSON object.
 */
const USAGE = `usage: npm run bench -- lifecycle [--tasks N] [--runs R] [--slots S] [--event-concurrency C] [--dispatch-batch B] [--timeout-s T]
  --tasks              task instances per run (default 10000)
  --runs               measurements; the report gives medians (default 1)
  --slots              worker slots, and the BullMQ-only worker's concurrency (default 64)
  --event-concurrency  scheduler trigger-event consumer concurrency (default 64)
  --dispatch-batch     scheduler dispatch batch (default 500)
  --timeout-s          give up on a pipeline after this long (default 300)`;

const Options = z.object({
  tasks: z.coerce.number().int().min(1).default(10_000),
  runs: z.coerce.number().int().min(1).default(1),
  slots: z.coerce.number().int().min(1).max(80).default(64),
  'event-concurrency': z.coerce.number().int().min(1).default(64),
  'dispatch-batch': z.coerce.number().int().min(1).default(500),
  'timeout-s': z.coerce.number().min(1).default(300),
});

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: Object.fromEntries(Object.keys(Options.shape).map((k) => [k, { type: 'string' as const }])),
  });
  if (positionals[0] !== 'lifecycle' || positionals.length > 1) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const parsed = Options.safeParse(values);
  if (!parsed.success) {
    process.stderr.write(`${parsed.error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`).join('\n')}\n${USAGE}\n`);
    return 2;
  }
  const o = parsed.data;
  teardownOnSignals();
  try {
    await lifecycle({
      tasks: o.tasks,
      runs: o.runs,
      slots: o.slots,
      eventConcurrency: o['event-concurrency'],
      dispatchBatch: o['dispatch-batch'],
      timeoutMs: o['timeout-s'] * 1000,
    });
    return 0;
  } catch (err) {
    process.stderr.write(`benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  } finally {
    await teardownAll();
  }
}

void main().then((code) => process.exit(code));

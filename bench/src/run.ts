import path from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { lifecycle } from './lifecycle';
import { interrupted, teardownAll, teardownOnSignals } from './teardown';

/**
 * `npm run bench -- <benchmark> [options]`. Progress goes to stderr; stdout carries the human
 * report and, as its very last line, one JSON object.
 */
const USAGE = `usage: npm run bench -- lifecycle [--tasks N] [--runs R] [--slots S] [--event-concurrency C]
         [--dispatch-batch B] [--timeout-s T] [--rate R] [--census] [--cpu-prof]
  --tasks              task instances per run (default 10000)
  --runs               measurements; the report gives medians (default 1)
  --slots              worker slots, and the BullMQ-only worker's concurrency (default 32; the
                       worker opens slots + 4 PostgreSQL connections, max_connections is 100)
  --event-concurrency  scheduler trigger-event consumer concurrency (default 32)
  --dispatch-batch     scheduler dispatch batch (default 500)
  --timeout-s          give up on a pipeline after this long (default 300)
  --rate               enqueue at this many tasks/s (open loop) instead of all at once
  --census             count SQL statements and Redis commands per process (instrumented: slower)
  --cpu-prof           write a V8 CPU profile of each process into bench/results/ and summarise it`;

const Options = z.object({
  tasks: z.coerce.number().int().min(1).default(10_000),
  runs: z.coerce.number().int().min(1).default(1),
  slots: z.coerce.number().int().min(1).max(64).default(32),
  'event-concurrency': z.coerce.number().int().min(1).default(32),
  'dispatch-batch': z.coerce.number().int().min(1).default(500),
  'timeout-s': z.coerce.number().min(1).default(300),
  rate: z.coerce.number().min(1).optional(),
  census: z.boolean().default(false),
  'cpu-prof': z.boolean().default(false),
});

const FLAGS = new Set(['census', 'cpu-prof']);

function parseCommandLine(): { values: Record<string, unknown>; positionals: string[] } | null {
  try {
    return parseArgs({
      allowPositionals: true,
      options: Object.fromEntries(Object.keys(Options.shape).map((k) => [k, { type: FLAGS.has(k) ? ('boolean' as const) : ('string' as const) }])),
    });
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    return null;
  }
}

async function main(): Promise<number> {
  const args = parseCommandLine();
  if (!args || args.positionals[0] !== 'lifecycle' || args.positionals.length > 1) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const parsed = Options.safeParse(args.values);
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
      rate: o.rate ?? null,
      instrument:
        o.census || o['cpu-prof']
          ? { root: path.join(__dirname, '..', 'results', new Date().toISOString().replace(/[:.]/g, '-')), census: o.census, cpuProf: o['cpu-prof'] }
          : null,
    });
    return 0;
  } catch (err) {
    if (interrupted()) return 130;
    process.stderr.write(`benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  } finally {
    await teardownAll();
  }
}

void main().then((code) => process.exit(code));

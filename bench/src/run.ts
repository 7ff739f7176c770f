import path from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { lifecycle } from './lifecycle';
import { triggererBench } from './triggerer-bench';
import { interrupted, teardownAll, teardownOnSignals } from './teardown';

/**
 * `npm run bench -- <benchmark> [options]`. Progress goes to stderr; stdout carries the human
 * report and, as its very last line, one JSON object.
 */
const USAGE = `usage: npm run bench -- lifecycle [--tasks N] [--runs R] [--slots S] [--event-concurrency C]
         [--dispatch-batch B] [--schedulers S] [--triggerers T] [--timeout-s T] [--rate R] [--census] [--cpu-prof] [--retention]
  --tasks              task instances per run (default 10000)
  --runs               measurements; the report gives medians (default 1)
  --slots              worker slots, and the BullMQ-only worker's concurrency (default 128; the
                       worker records its slots' steps in batches over at most 12 PostgreSQL connections)
  --event-concurrency  scheduler trigger-event consumer concurrency (default 256)
  --dispatch-batch     scheduler dispatch batch (default 500)
  --schedulers         scheduler processes (default 1; each hears every fired hint)
  --triggerers         triggerer processes (default 1; they share the triggers)
  --timeout-s          give up on a pipeline after this long (default 300)
  --rate               enqueue at this many tasks/s (open loop) instead of all at once
  --census             count SQL statements and Redis commands per process (instrumented: slower)
  --cpu-prof           write a V8 CPU profile of each process into bench/results/ and summarise it
  --retention          the scheduler deletes finished rows 2 s after they end, during the run;
                       reports the rows of task_instance, task_transition, job and rejection`;

const TRIGGERER_USAGE = `usage: npm run bench -- triggerer [--triggers N] [--failover-triggers F] [--lead-s L] [--spread-s S]
  --triggers           timer triggers on one replica (default 100000)
  --failover-triggers  triggers held by the replica killed with kill -9 (default 10000)
  --lead-s             seconds from the start until the first trigger is due (default 30)
  --spread-s           seconds over which the triggers fall due (default 60)`;

const TriggererOptions = z.object({
  triggers: z.coerce.number().int().min(1).default(100_000),
  'failover-triggers': z.coerce.number().int().min(1).default(10_000),
  'lead-s': z.coerce.number().min(1).default(30),
  'spread-s': z.coerce.number().min(1).default(60),
});

/** Runs a benchmark with teardown on exit and on signals; the process exit code. */
async function execute(bench: () => Promise<void>): Promise<number> {
  teardownOnSignals();
  try {
    await bench();
    return 0;
  } catch (err) {
    if (interrupted()) return 130;
    process.stderr.write(`benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  } finally {
    await teardownAll();
  }
}

function issues(error: { issues: { path: PropertyKey[]; message: string }[] }): string {
  return error.issues.map((i) => `--${i.path.map(String).join('.')}: ${i.message}`).join('\n');
}

async function runTriggerer(argv: string[]): Promise<number> {
  let values: Record<string, unknown>;
  try {
    values = parseArgs({ args: argv, options: Object.fromEntries(Object.keys(TriggererOptions.shape).map((k) => [k, { type: 'string' as const }])) }).values;
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${TRIGGERER_USAGE}\n`);
    return 2;
  }
  const parsed = TriggererOptions.safeParse(values);
  if (!parsed.success) {
    process.stderr.write(`${issues(parsed.error)}\n${TRIGGERER_USAGE}\n`);
    return 2;
  }
  const o = parsed.data;
  return execute(() =>
    triggererBench({
      triggers: o.triggers,
      failoverTriggers: o['failover-triggers'],
      leadS: o['lead-s'],
      spreadS: o['spread-s'],
      capacity: Math.max(o.triggers, o['failover-triggers']),
    }),
  );
}

const Options = z.object({
  tasks: z.coerce.number().int().min(1).default(10_000),
  runs: z.coerce.number().int().min(1).default(1),
  slots: z.coerce.number().int().min(1).max(1024).default(128),
  'event-concurrency': z.coerce.number().int().min(1).default(256),
  'dispatch-batch': z.coerce.number().int().min(1).default(500),
  schedulers: z.coerce.number().int().min(1).max(8).default(1),
  triggerers: z.coerce.number().int().min(1).max(8).default(1),
  'timeout-s': z.coerce.number().min(1).default(300),
  rate: z.coerce.number().min(1).optional(),
  census: z.boolean().default(false),
  'cpu-prof': z.boolean().default(false),
  retention: z.boolean().default(false),
});

const FLAGS = new Set(['census', 'cpu-prof', 'retention']);

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
  if (process.argv[2] === 'triggerer') return runTriggerer(process.argv.slice(3));
  const args = parseCommandLine();
  if (!args || args.positionals[0] !== 'lifecycle' || args.positionals.length > 1) {
    process.stderr.write(`${USAGE}\n\n${TRIGGERER_USAGE}\n`);
    return 2;
  }
  const parsed = Options.safeParse(args.values);
  if (!parsed.success) {
    process.stderr.write(`${issues(parsed.error)}\n${USAGE}\n`);
    return 2;
  }
  const o = parsed.data;
  return execute(() =>
    lifecycle({
      tasks: o.tasks,
      runs: o.runs,
      slots: o.slots,
      eventConcurrency: o['event-concurrency'],
      dispatchBatch: o['dispatch-batch'],
      replicas: { scheduler: o.schedulers, triggerer: o.triggerers },
      timeoutMs: o['timeout-s'] * 1000,
      rate: o.rate ?? null,
      retention: o.retention,
      instrument:
        o.census || o['cpu-prof']
          ? { root: path.join(__dirname, '..', 'results', new Date().toISOString().replace(/[:.]/g, '-')), census: o.census, cpuProf: o['cpu-prof'] }
          : null,
    }),
  );
}

void main().then((code) => process.exit(code));

import type { Distribution } from './stats';
import { median, round } from './stats';
import { fmt, table } from './table';
import { TARGETS, type LifecycleOptions, type RunFigures } from './types';
import { BENCH_DISPATCH_AHEAD, environmentOverrides } from './deferrable-pipeline';
import type { MachineFacts } from './machine';
import type { TableRows } from './sql';

const medianOf = (runs: readonly RunFigures[], f: (r: RunFigures) => number): number => median(runs.map(f));

function verdict(value: number, target: number, atLeast: boolean): string {
  const met = atLeast ? value >= target : value <= target;
  if (met) return 'MET';
  const by = atLeast ? ((target - value) / target) * 100 : ((value - target) / target) * 100;
  return `MISSED by ${fmt(Math.abs(atLeast ? target - value : value - target))} (${by.toFixed(0)}%)`;
}

function mainTable(runs: readonly RunFigures[]): string {
  const metrics: [string, (r: RunFigures) => number, string][] = [
    ['deferrable cycles/s', (r) => r.deferrable.cyclesPerS, `>= ${TARGETS.cyclesPerS}`],
    ['BullMQ-only cycles/s (same run)', (r) => r.baseline.cyclesPerS, ''],
    ['ratio deferrable / BullMQ-only', (r) => r.ratio, ''],
    ['deferrable elapsed s', (r) => r.deferrable.elapsedMs / 1000, ''],
    ['BullMQ-only elapsed s', (r) => r.baseline.elapsedMs / 1000, ''],
    ['resume p50 ms (recorded -> callback)', (r) => r.deferrable.resume.p50, ''],
    ['resume p99 ms', (r) => r.deferrable.resume.p99, `<= ${TARGETS.resumeP99Ms}`],
    ['resume max ms', (r) => r.deferrable.resume.max, ''],
    ['due -> callback p50 ms, deferrable', (r) => r.deferrable.dueToResume.p50, ''],
    ['due -> callback p99 ms, deferrable', (r) => r.deferrable.dueToResume.p99, ''],
    ['due -> callback p50 ms, BullMQ-only', (r) => r.baseline.dueToResume.p50, ''],
    ['due -> callback p99 ms, BullMQ-only', (r) => r.baseline.dueToResume.p99, ''],
    ['CPU ms per cycle, deferrable (apps, their backends, Redis)', (r) => r.deferrable.cpuMsPerCycle, ''],
    ['CPU ms per cycle, BullMQ-only (worker, producer, Redis)', (r) => r.baseline.cpuMsPerCycle, ''],
    ['machine CPU used by others, % of a core (deferrable run)', (r) => r.deferrable.cpu.byGroup.other ?? 0, ''],
    ['tasks not run exactly twice', (r) => r.deferrable.anomalies, '0'],
  ];
  return table(
    ['metric', ...runs.map((_, i) => `run ${i + 1}`), 'median', 'target'],
    metrics.map(([label, f, target]) => [label, ...runs.map(f), medianOf(runs, f), target]),
  );
}

function stagesTable(runs: readonly RunFigures[]): string {
  const names = Object.keys(runs[0]!.deferrable.stages) as (keyof RunFigures['deferrable']['stages'])[];
  const cols: (keyof Distribution)[] = ['p50', 'p90', 'p99', 'max'];
  return table(
    ['lifecycle stage, ms (median of runs)', ...cols],
    names.map((n) => [n, ...cols.map((c) => medianOf(runs, (r) => r.deferrable.stages[n][c]))]),
  );
}

function costTable(runs: readonly RunFigures[]): string {
  const rows: [string, number][] = [
    ['SQL transactions (pg_stat_database, all apps)', medianOf(runs, (r) => r.deferrable.sqlTransactionsPerCycle)],
    ['  of which rolled back', medianOf(runs, (r) => r.deferrable.sqlRollbacksPerCycle)],
    ['BullMQ jobs (dispatch + trigger-event)', medianOf(runs, (r) => r.deferrable.bullmqJobsPerCycle)],
    ['Redis commands, server-wide INFO (incl. inside Lua, other users)', medianOf(runs, (r) => r.deferrable.redisCommandsPerCycle)],
    ['  the same for the BullMQ-only baseline', medianOf(runs, (r) => r.baseline.redisCommandsPerCycle)],
  ];
  for (const key of Object.keys(runs[0]!.deferrable.tupleWritesPerCycle).sort()) {
    rows.push([`rows ${key}`, medianOf(runs, (r) => r.deferrable.tupleWritesPerCycle[key] ?? 0)]);
  }
  return table(['per cycle (median of runs)', 'count'], rows);
}

function cpuTable(runs: readonly RunFigures[]): string {
  const d = Object.keys(runs[0]!.deferrable.cpu.byGroup);
  const b = Object.keys(runs[0]!.baseline.cpu.byGroup);
  const rows: [string, number, string][] = d.map((k) => [k, medianOf(runs, (r) => r.deferrable.cpu.byGroup[k] ?? 0), 'deferrable']);
  for (const k of b) rows.push([k, medianOf(runs, (r) => r.baseline.cpu.byGroup[k] ?? 0), 'BullMQ-only']);
  const noise = runs.map((r, i) => `  run ${i + 1}: deferrable [${r.deferrable.cpu.otherTop || '-'}]; BullMQ-only [${r.baseline.cpu.otherTop || '-'}]`);
  return [
    table(['CPU, % of one core (median of runs)', '%', 'pipeline'], rows),
    '"other" = processes outside both pipelines (other users of this machine); the biggest still alive at the end:',
    ...noise,
  ].join('\n');
}

function tableRowLines(runs: readonly RunFigures[]): string[] {
  const measured = runs.flatMap((r, i) => (r.deferrable.tableRows ? [{ run: i + 1, rows: r.deferrable.tableRows }] : []));
  if (measured.length === 0) return [];
  const tables: (keyof TableRows)[] = ['task_instance', 'task_transition', 'job', 'rejection'];
  return [
    table(
      ['rows with --retention (most during the run / at the end)', ...measured.map((m) => `run ${m.run}`)],
      tables.map((t) => [t, ...measured.map((m) => `${m.rows.max[t]} / ${m.rows.end[t]}`)]),
    ),
    '',
  ];
}

function problemLines(runs: readonly RunFigures[]): string[] {
  const lines = runs.flatMap((r, i) => Object.entries(r.deferrable.appProblems).map(([msg, n]) => `  run ${i + 1}: ${n} x ${msg}`));
  return lines.length ? ['warnings and errors the apps logged:', ...lines.slice(0, 20), ''] : ['the apps logged no warnings or errors', ''];
}

/** The human report, then the one-line JSON summary as the very last line of stdout. */
export function printReport(o: LifecycleOptions, m: MachineFacts, runs: readonly RunFigures[]): void {
  const cycles = medianOf(runs, (r) => r.deferrable.cyclesPerS);
  const p50 = medianOf(runs, (r) => r.deferrable.resume.p50);
  const p99 = medianOf(runs, (r) => r.deferrable.resume.p99);
  const baseline = medianOf(runs, (r) => r.baseline.cyclesPerS);
  const ratio = medianOf(runs, (r) => r.ratio);
  const out = [
    `Deferrable lifecycle benchmark: ${o.tasks} tasks x ${runs.length} run(s), figures are medians of runs`,
    `machine: ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB RAM, 1-min load before start ${m.loadAvg1m}; node ${m.node}, PostgreSQL ${m.postgres}, Redis ${m.redis}`,
    `load: ${o.rate === null ? 'all tasks enqueued at once (chunks of 1000): a backlog, as specified' : `open loop, ${o.rate} tasks/s (--rate): not the specified load`}`,
    `processes: ${o.replicas.scheduler} scheduler(s), ${o.replicas.triggerer} triggerer(s), 1 worker; CPU figures of each kind are their sum`,
    `settings: worker slots ${o.slots} (BullMQ-only concurrency ${o.slots}), scheduler event concurrency ${o.eventConcurrency}, dispatch batch ${o.dispatchBatch}, dispatch backlog mark ${process.env.DEFERRABLE_DISPATCH_AHEAD ?? BENCH_DISPATCH_AHEAD}, LOG_LEVEL=warn, timer delays uniform over [0, 1000) ms`,
    `environment overrides: ${environmentOverrides().join(' ') || 'none'}`,
    '',
    mainTable(runs),
    '',
    stagesTable(runs),
    '',
    costTable(runs),
    '',
    cpuTable(runs),
    '',
    ...(runs.some((r) => r.instrumentNotes.length > 0)
      ? ['INSTRUMENTED RUN (--census/--cpu-prof): the figures above include the instrumentation overhead.', ...runs.flatMap((r) => r.instrumentNotes), '']
      : []),
    ...tableRowLines(runs),
    ...problemLines(runs),
    `target cycles/s >= ${TARGETS.cyclesPerS}: ${verdict(cycles, TARGETS.cyclesPerS, true)}`,
    `target resume p99 <= ${TARGETS.resumeP99Ms} ms: ${verdict(p99, TARGETS.resumeP99Ms, false)}`,
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  const summary = {
    bench: 'lifecycle',
    tasks: o.tasks,
    runs: runs.length,
    cycles_per_s: round(cycles),
    resume_p50_ms: round(p50, 2),
    resume_p99_ms: round(p99, 2),
    baseline_bullmq_cycles_per_s: round(baseline),
    ratio: round(ratio, 3),
    cycles_target_met: cycles >= TARGETS.cyclesPerS,
    resume_p99_target_met: p99 <= TARGETS.resumeP99Ms,
    cores: m.cores,
    memory_gib: m.memoryGiB,
    worker_slots: o.slots,
    schedulers: o.replicas.scheduler,
    triggerers: o.replicas.triggerer,
    rate: o.rate,
    environment_overrides: environmentOverrides(),
    instrumented: o.instrument !== null,
    retention: o.retention,
    table_rows: runs.map((r) => r.deferrable.tableRows),
    cpu_ms_per_cycle: round(
      medianOf(runs, (r) => r.deferrable.cpuMsPerCycle),
      2,
    ),
    baseline_cpu_ms_per_cycle: round(
      medianOf(runs, (r) => r.baseline.cpuMsPerCycle),
      2,
    ),
    per_run: runs.map((r) => ({
      cycles_per_s: round(r.deferrable.cyclesPerS),
      baseline_bullmq_cycles_per_s: round(r.baseline.cyclesPerS),
      resume_p50_ms: round(r.deferrable.resume.p50, 2),
      resume_p99_ms: round(r.deferrable.resume.p99, 2),
    })),
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

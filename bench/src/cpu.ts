import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU time per process from /proc, to see which process is CPU-bound during a measurement. A
 * snapshot holds utime+stime (ms) of every live process and the machine's busy/total time.
 */
export interface CpuSnapshot {
  at: number;
  procs: Map<number, { comm: string; ms: number }>;
  machineBusyMs: number;
  machineTotalMs: number;
}

// USER_HZ is 100 on every Linux build we run on (getconf CLK_TCK).
const TICK_MS = 10;

function readProc(pid: number): { comm: string; ms: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    // Fields after "(comm) ": state ppid pgrp ... utime is field 14 of the whole line, stime 15.
    const rest = stat.slice(close + 2).split(' ');
    return { comm, ms: (Number(rest[11]) + Number(rest[12])) * TICK_MS };
  } catch {
    return null; // the process ended between readdir and read
  }
}

export function cpuSnapshot(): CpuSnapshot {
  const procs = new Map<number, { comm: string; ms: number }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const p = readProc(Number(name));
    if (p) procs.set(Number(name), p);
  }
  // First line of /proc/stat: cpu user nice system idle iowait irq softirq steal ...
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { at: Date.now(), procs, machineBusyMs: (total - idle) * TICK_MS, machineTotalMs: total * TICK_MS };
}

export interface CpuGroup {
  label: string;
  pids: (pid: number, comm: string) => boolean;
}

export interface CpuUsage {
  /** % of one core per group, plus "other" (everything else, including exited processes) and "machine". */
  byGroup: Record<string, number>;
  /** The biggest ungrouped processes still alive at the end: who else loaded the machine. */
  otherTop: string;
  wallMs: number;
}

/** CPU milliseconds the given groups used per unit of work (e.g. per cycle): robust to a busy machine. */
export function cpuMsPer(usage: CpuUsage, labels: readonly string[], units: number): number {
  const pct = labels.reduce((sum, l) => sum + (usage.byGroup[l] ?? 0), 0);
  return (pct / 100) * (usage.wallMs / units);
}

/**
 * CPU use between two snapshots as a percentage of one core, per group (first matching group
 * wins), plus "other" and the machine's total (of nproc x 100 %). A process born during the window
 * counts from zero; one that ended during it is missed (its time goes to "other" via the total).
 */
export function cpuUsage(a: CpuSnapshot, b: CpuSnapshot, groups: readonly CpuGroup[]): CpuUsage {
  const wallMs = Math.max(1, b.at - a.at);
  const pct = (ms: number) => (100 * ms) / wallMs;
  const grouped = new Map<string, number>(groups.map((g) => [g.label, 0]));
  const others = new Map<string, number>();
  for (const [pid, p] of b.procs) {
    const before = a.procs.get(pid);
    const delta = p.ms - (before && before.comm === p.comm ? before.ms : 0);
    if (delta <= 0) continue;
    const g = groups.find((x) => x.pids(pid, p.comm));
    if (g) grouped.set(g.label, grouped.get(g.label)! + delta);
    else others.set(p.comm, (others.get(p.comm) ?? 0) + delta);
  }
  const busy = b.machineBusyMs - a.machineBusyMs;
  const groupedTotal = [...grouped.values()].reduce((x, y) => x + y, 0);
  const byGroup: Record<string, number> = {};
  for (const [label, ms] of grouped) byGroup[label] = pct(ms);
  byGroup.other = Math.max(0, pct(busy - groupedTotal));
  byGroup.machine = pct(busy);
  const otherTop = [...others]
    .sort((x, y) => y[1] - x[1])
    .slice(0, 4)
    .map(([comm, ms]) => `${comm} ${Math.round(pct(ms))}%`)
    .join(', ');
  return { byGroup, otherTop, wallMs };
}

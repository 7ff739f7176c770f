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

/**
 * CPU use between two snapshots as a percentage of one core, per group (first matching group
 * wins), plus "other" and the machine's total (of nproc x 100 %). A process born during the window
 * counts from zero; one that ended during it is missed (its time goes to "other" via the total).
 */
export function cpuUsage(a: CpuSnapshot, b: CpuSnapshot, groups: readonly CpuGroup[]): Record<string, number> {
  const wallMs = Math.max(1, b.at - a.at);
  const out: Record<string, number> = {};
  for (const g of groups) out[g.label] = 0;
  let grouped = 0;
  for (const [pid, p] of b.procs) {
    const before = a.procs.get(pid);
    const delta = p.ms - (before && before.comm === p.comm ? before.ms : 0);
    const g = groups.find((x) => x.pids(pid, p.comm));
    if (!g || delta <= 0) continue;
    out[g.label]! += delta;
    grouped += delta;
  }
  const busy = b.machineBusyMs - a.machineBusyMs;
  const result: Record<string, number> = {};
  for (const g of groups) result[g.label] = (100 * out[g.label]!) / wallMs;
  result.other = Math.max(0, (100 * (busy - grouped)) / wallMs);
  result.machine = (100 * busy) / wallMs;
  return result;
}

import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { table } from './table';

/** Turning `instrument.ts` on in child processes, and summaries of what it wrote. */

export interface Instrumentation {
  /** Where census files and CPU profiles go (created). */
  dir: string;
  census: boolean;
  cpuProf: boolean;
}

/** Environment that preloads instrument.ts into a child process, writing into `i.dir`. */
export function instrumentEnv(i: Instrumentation | null): Record<string, string> {
  if (!i || (!i.census && !i.cpuProf)) return {};
  mkdirSync(i.dir, { recursive: true });
  const env: Record<string, string> = {
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require=${path.join(__dirname, 'instrument.js')}`.trim(),
  };
  if (i.census) env.BENCH_CENSUS_DIR = i.dir;
  if (i.cpuProf) env.BENCH_CPU_PROFILE_DIR = i.dir;
  return env;
}

const CensusFile = z.object({
  process: z.string(),
  pid: z.number(),
  sql: z.record(z.string(), z.object({ calls: z.number(), ms: z.number() })),
  redis: z.record(z.string(), z.number()),
});

const files = (dir: string, ext: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith(ext))
    .map((f) => path.join(dir, f));

/** Statements and Redis commands per cycle, by process (with the mean client-side latency of each statement). */
export function censusReport(dir: string, tasks: number): string {
  const rows: (string | number)[][] = [];
  for (const file of files(dir, '.json')) {
    const c = CensusFile.parse(JSON.parse(readFileSync(file, 'utf8')));
    const sql = Object.entries(c.sql).sort((a, b) => b[1].calls - a[1].calls);
    for (const [label, s] of sql) if (s.calls / tasks >= 0.005) rows.push([c.process, `SQL ${label}`, s.calls / tasks, s.ms / s.calls]);
    const redis = Object.entries(c.redis).sort((a, b) => b[1] - a[1]);
    for (const [name, calls] of redis) if (calls / tasks >= 0.005) rows.push([c.process, `redis ${name}`, calls / tasks, '']);
    const sqlTotal = sql.reduce((n, [, s]) => n + s.calls, 0);
    const redisTotal = redis.reduce((n, [, k]) => n + k, 0);
    rows.push([c.process, 'total SQL statements | Redis commands', `${(sqlTotal / tasks).toFixed(2)} | ${(redisTotal / tasks).toFixed(2)}`, '']);
  }
  return table(['process', 'statement or command', 'per cycle', 'mean ms'], rows);
}

const Profile = z.object({
  nodes: z.array(z.object({ id: z.number(), callFrame: z.object({ functionName: z.string(), url: z.string(), lineNumber: z.number() }) })),
  samples: z.array(z.number()),
  timeDeltas: z.array(z.number()),
  startTime: z.number(),
  endTime: z.number(),
});

/** Where a frame's code lives: a package, a Deferrable package, node internals, or a native frame. */
function owner(url: string, fn: string): string {
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (pkg) return pkg;
  const own = /\/(?:packages|apps)\/([^/]+)\//.exec(url)?.[1];
  if (own) return `deferrable/${own}`;
  if (url.startsWith('node:')) return 'node internals';
  return url ? path.basename(url) : `native ${fn}`;
}

/** Per process: busy CPU seconds, and self time by owner and by function. */
export function profileReport(dir: string): string {
  const out: string[] = [];
  for (const file of files(dir, '.cpuprofile')) {
    const p = Profile.parse(JSON.parse(readFileSync(file, 'utf8')));
    const frames = new Map(p.nodes.map((n) => [n.id, n.callFrame]));
    const byOwner = new Map<string, number>();
    const byFn = new Map<string, number>();
    let busy = 0;
    p.samples.forEach((id, i) => {
      const f = frames.get(id);
      const dt = p.timeDeltas[i] ?? 0;
      if (!f || f.functionName === '(idle)') return;
      busy += dt;
      const o = owner(f.url, f.functionName);
      byOwner.set(o, (byOwner.get(o) ?? 0) + dt);
      const fn = `${f.functionName || '(anonymous)'} ${f.url ? `${path.basename(f.url)}:${f.lineNumber + 1}` : ''}`.trim();
      byFn.set(fn, (byFn.get(fn) ?? 0) + dt);
    });
    const top = (m: Map<string, number>, n: number) =>
      [...m]
        .sort((a, b) => b[1] - a[1])
        .slice(0, n)
        .map(([k, v]) => `${k} ${((100 * v) / busy).toFixed(0)}%`)
        .join(', ');
    out.push(
      `${path.basename(file)}: ${(busy / 1e6).toFixed(1)} s busy of ${((p.endTime - p.startTime) / 1e6).toFixed(1)} s (whole process life)`,
      `  by owner: ${top(byOwner, 8)}`,
      `  by function: ${top(byFn, 6)}`,
    );
  }
  return out.join('\n');
}

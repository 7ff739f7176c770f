import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Preloaded into the app processes (NODE_OPTIONS=--require) by `--census` and `--cpu-prof`; does
 * nothing unless its variables are set. Instrumentation for analysis only: it wraps pg's and
 * ioredis's client methods (adding some overhead), so figures of an instrumented run are not
 * the benchmark's figures.
 *   BENCH_CENSUS_DIR       count SQL statements (with client-side latency) and Redis commands
 *   BENCH_CPU_PROFILE_DIR  write a V8 CPU profile of the process at exit
 */
export interface Census {
  process: string;
  pid: number;
  sql: Record<string, { calls: number; ms: number }>;
  redis: Record<string, number>;
}

const processName = (): string => /apps\/(\w+)\/dist\/main\.js$/.exec(process.argv[1] ?? '')?.[1] ?? path.basename(process.argv[1] ?? 'node', '.js');

/** A statement's label: its first words, whitespace collapsed. */
export const sqlLabel = (text: string): string => text.replace(/\s+/g, ' ').trim().slice(0, 60);

type Fn = (this: unknown, ...args: unknown[]) => unknown;

function censusOfSql(census: Census): void {
  const pg = require('pg') as { Client: { prototype: { query: Fn } } };
  const query = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: unknown, ...args: unknown[]) {
    const first = args[0];
    const text = typeof first === 'string' ? first : ((first as { text?: string } | null)?.text ?? '?');
    const entry = (census.sql[sqlLabel(text)] ??= { calls: 0, ms: 0 });
    entry.calls++;
    const started = performance.now();
    const addTime = () => void (entry.ms += performance.now() - started);
    const last = args.length - 1;
    const callback = args[last];
    if (typeof callback === 'function') {
      args[last] = function (this: unknown, ...r: unknown[]) {
        addTime();
        return (callback as Fn).apply(this, r);
      };
      return query.apply(this, args);
    }
    const result = query.apply(this, args);
    if (result instanceof Promise) result.then(addTime, addTime);
    return result;
  };
}

function censusOfRedis(census: Census): void {
  const { Redis } = require('ioredis') as { Redis: { prototype: { sendCommand: Fn; defineCommand: Fn } } };
  const scripts = new Map<string, string>();
  const define = Redis.prototype.defineCommand;
  Redis.prototype.defineCommand = function (this: unknown, ...args: unknown[]) {
    const [name, def] = args as [string, { lua: string }];
    scripts.set(createHash('sha1').update(def.lua).digest('hex'), name);
    return define.apply(this, args);
  };
  const send = Redis.prototype.sendCommand;
  Redis.prototype.sendCommand = function (this: unknown, ...args: unknown[]) {
    const cmd = args[0] as { name: string; args: unknown[] };
    const name = cmd.name === 'evalsha' ? `evalsha ${scripts.get(String(cmd.args[0])) ?? '?'}` : cmd.name;
    census.redis[name] = (census.redis[name] ?? 0) + 1;
    return send.apply(this, args);
  };
}

function cpuProfile(dir: string): void {
  const inspector = require('node:inspector') as typeof import('node:inspector');
  const session = new inspector.Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.start');
  process.on('exit', () => {
    // The in-process session answers synchronously, so this completes before the exit.
    session.post('Profiler.stop', (err, res) => {
      if (!err) writeFileSync(path.join(dir, `${processName()}-${process.pid}.cpuprofile`), JSON.stringify(res.profile));
    });
  });
}

const censusDir = process.env.BENCH_CENSUS_DIR;
if (censusDir) {
  const census: Census = { process: processName(), pid: process.pid, sql: {}, redis: {} };
  censusOfSql(census);
  censusOfRedis(census);
  process.on('exit', () => writeFileSync(path.join(censusDir, `${census.process}-${process.pid}.json`), JSON.stringify(census)));
}
const profileDir = process.env.BENCH_CPU_PROFILE_DIR;
if (profileDir) cpuProfile(profileDir);

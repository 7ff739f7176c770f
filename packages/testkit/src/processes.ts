import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';

export type AppName = 'scheduler' | 'triggerer' | 'worker' | 'api';

export interface LogRecord {
  level: number;
  msg: string;
  [key: string]: unknown;
}

const REPO = path.resolve(__dirname, '../../..');

/** Fast intervals so that end-to-end tests finish in seconds; each test may override. */
export const FAST_ENV: Record<string, string> = {
  DEFERRABLE_MODULES: path.join(REPO, 'packages/testkit/dist/fixtures.js'),
  DEFERRABLE_POLL_MS: '200',
  DEFERRABLE_HEARTBEAT_MS: '300',
  DEFERRABLE_REAP_AFTER_MS: '2500',
  DEFERRABLE_REDISPATCH_AFTER_MS: '1500',
  DEFERRABLE_CLEANUP_INTERVAL_MS: '500',
  DEFERRABLE_CLAIM_INTERVAL_MS: '200',
  DEFERRABLE_SYNC_INTERVAL_MS: '300',
  DEFERRABLE_HEALTH_THRESHOLD_MS: '2000',
  DEFERRABLE_SHUTDOWN_GRACE_MS: '2000',
  DEFERRABLE_HEALTH_PORT: '0',
};

/** An app started as a real OS process, with its JSON log lines collected. */
export class AppProcess {
  readonly logs: LogRecord[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;

  constructor(
    readonly name: AppName,
    env: Record<string, string>,
    opts: { nodeArgs?: string[] } = {},
  ) {
    const entry = path.join(REPO, 'apps', name, 'dist/main.js');
    this.child = spawn(process.execPath, [...(opts.nodeArgs ?? []), entry], {
      env: { ...process.env, ...FAST_ENV, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      try {
        this.logs.push(JSON.parse(line) as LogRecord);
      } catch {
        this.stderr.push(line);
      }
    });
    createInterface({ input: this.child.stderr! }).on('line', (line) => this.stderr.push(line));
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves with the first log record matching, waiting up to `timeoutMs`. */
  async waitForLog(match: (r: LogRecord) => boolean, timeoutMs = 15_000): Promise<LogRecord> {
    return waitFor(() => this.logs.find(match), timeoutMs, `${this.name} log line`);
  }

  async started(timeoutMs = 15_000): Promise<void> {
    await this.waitForLog((r) => typeof r.msg === 'string' && r.msg.endsWith(' started'), timeoutMs).catch((err: Error) => {
      throw new Error(`${err.message}; stderr: ${this.stderr.join('\n').slice(0, 2000)}`);
    });
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.running) this.child.kill(signal);
  }

  /** SIGTERM and wait; SIGKILL if it does not exit in time. */
  async stop(timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.running) return this.exited;
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Polls `probe` until it returns a value other than undefined/null/false. */
export async function waitFor<T>(
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 15_000,
  what = 'condition',
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export async function stopApps(apps: readonly AppProcess[]): Promise<void> {
  await Promise.all(apps.map((a) => a.stop()));
}

import { cpus, loadavg, totalmem } from 'node:os';
import { Client } from 'pg';
import type { Redis } from 'ioredis';
import { PG_ADMIN_URL } from '@deferrable/testkit';

export interface MachineFacts {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  loadAvg1m: number;
  node: string;
  postgres: string;
  redis: string;
  redisPid: number | null;
}

export async function machineFacts(redis: Redis): Promise<MachineFacts> {
  const pg = new Client({ connectionString: PG_ADMIN_URL });
  let postgres = '?';
  try {
    await pg.connect();
    postgres = (await pg.query<{ server_version: string }>('SHOW server_version')).rows[0]?.server_version ?? '?';
  } finally {
    await pg.end();
  }
  const info = await redis.info('server');
  return {
    cores: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? '?',
    memoryGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
    loadAvg1m: Number(loadavg()[0]!.toFixed(2)),
    node: process.version,
    postgres,
    redis: /redis_version:(\S+)/.exec(info)?.[1] ?? '?',
    redisPid: Number(/process_id:(\d+)/.exec(info)?.[1]) || null,
  };
}

/** Redis's server-wide command counter (it counts commands run inside Lua scripts too). */
export async function redisCommands(redis: Redis): Promise<number> {
  return Number(/total_commands_processed:(\d+)/.exec(await redis.info('stats'))?.[1] ?? 0);
}

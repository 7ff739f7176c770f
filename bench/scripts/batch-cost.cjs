// Backend CPU per task for the 7 task_instance updates of one lifecycle, by batch size: the
// figure behind batching the worker's steps (bench/RESULTS.md). A scratch database with both
// migrations, N rows, then each step as `UPDATE ... WHERE id = ANY($1)` over batches of B ids.
//   node bench/scripts/batch-cost.cjs [B=100] [N=20000]       (PGURL, default postgres on 127.0.0.1)
const { Client } = require('pg');
const fs = require('node:fs');
const path = require('node:path');
const { randomUUID } = require('node:crypto');

const B = Number(process.argv[2] ?? 100);
const N = Number(process.argv[3] ?? 20000);
const ADMIN = process.env.PGURL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const MIGRATIONS = path.join(__dirname, '../../prisma/migrations');
const STEPS = [
  `state='queued', dispatch_attempt=dispatch_attempt+1, queued_at=now() WHERE state='scheduled'`,
  `state='running', worker_id=gen_random_uuid(), heartbeat_at=now(), started_at=now() WHERE state='queued'`,
  `state='deferred', next_method='cb', next_kwargs='{"kwargs":{}}', worker_id=null, heartbeat_at=null WHERE state='running'`,
  `state='scheduled', next_kwargs='{"event":{"a":1}}' WHERE state='deferred'`,
  `state='queued', dispatch_attempt=dispatch_attempt+1, queued_at=now() WHERE state='scheduled'`,
  `state='running', worker_id=gen_random_uuid(), heartbeat_at=now(), started_at=now() WHERE state='queued'`,
  `state='success', result='null', next_method=null, next_kwargs=null, ended_at=now() WHERE state='running'`,
].map((s) => `UPDATE task_instance SET updated_at = now(), last_actor = 'bench', ${s.replace(' WHERE ', ' WHERE id = ANY($1::uuid[]) AND ')}`);

(async () => {
  const admin = new Client({ connectionString: ADMIN });
  await admin.connect();
  const name = `batchcost_${process.pid}`;
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN);
  url.pathname = `/${name}`;
  const c = new Client({ connectionString: url.toString() });
  try {
    await c.connect();
    for (const dir of fs
      .readdirSync(MIGRATIONS)
      .filter((d) => /^\d+_/.test(d))
      .sort()) {
      await c.query(fs.readFileSync(path.join(MIGRATIONS, dir, 'migration.sql'), 'utf8'));
    }
    const ids = Array.from({ length: N }, () => randomUUID());
    await c.query(`INSERT INTO task_instance (id, task_name, state) SELECT unnest($1::uuid[]), 'x', 'scheduled'`, [ids]);
    const pid = (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p;
    // utime + stime of the backend, in ms (clock ticks of 10 ms)
    const cpu = () => {
      const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      return (Number(f[11]) + Number(f[12])) * 10;
    };
    const t0 = Date.now();
    const c0 = cpu();
    for (const sql of STEPS) for (let i = 0; i < N; i += B) await c.query(sql, [ids.slice(i, i + B)]);
    const wall = Date.now() - t0;
    const used = cpu() - c0;
    console.log(
      JSON.stringify({ batch: B, tasks: N, wall_us_per_task: Math.round((wall * 1000) / N), backend_cpu_us_per_task: Math.round((used * 1000) / N) }),
    );
  } finally {
    await c.end().catch(() => undefined);
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
})().catch((err) => {
  console.error(err);
  process.exit(1);
});

#!/usr/bin/env node
// Breaks the resume path of a lifecycle benchmark run into its hops, from the points written by
// the resume-path probe. Usage (from the repository root):
//   git apply bench/scripts/resume-trace.patch && npx turbo run build
//   mkdir -p /tmp/trace && DEFERRABLE_TRACE_DIR=/tmp/trace node bench/dist/run.js lifecycle
//   node bench/scripts/resume-trace.cjs /tmp/trace
//   git apply -R bench/scripts/resume-trace.patch && npx turbo run build
// Times are wall clock (one machine, one clock). "recStart" is when the triggerer sent the
// statement that records the outcome (the benchmark's "recorded" is that statement's now()).
const fs = require('node:fs');
const path = require('node:path');

const dir = process.argv[2] ?? '/tmp/trace';
const points = {};
const lags = [];
for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.jsonl'))) {
  for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const r = JSON.parse(line);
    if (r.k === 'lag') lags.push(r);
    else {
      const seen = (points[r.k] ??= new Map());
      if (!seen.has(r.id)) seen.set(r.id, r);
    }
  }
}
const get = (k, id) => points[k]?.get(id);
const HOPS = [
  ['record statement (triggerer)', (p) => p.rec.t - p.rec.t0],
  ['commit -> hint published', (p) => p.pub.t - p.rec.t],
  ['hint published -> received (scheduler)', (p) => p.recv.t - p.pub.t],
  ['received -> resume statement sent', (p) => p.stmt.t0 - p.recv.t],
  ['resume statement (scheduler)', (p) => p.stmt.t - p.stmt.t0],
  ['statement done -> dispatch job added', (p) => p.added.t - p.stmt.t],
  ['job added -> taken by a worker (BullMQ processedOn)', (p) => p.enter.proc - p.added.t],
  ['taken -> worker handler entered', (p) => p.enter.t - p.enter.proc],
  ['  of which: taken -> job data in the worker', (p) => p.arrived.t - p.enter.proc],
  ["  of which: in BullMQ's loop queue, until dequeued", (p) => p.dequeued.t - p.arrived.t],
  ['handler -> start committed (callback starts)', (p) => p.started.t - p.enter.t],
  ['TOTAL record statement sent -> callback starts', (p) => p.started.t - p.rec.t0],
];
const paths = [];
for (const [triggerId, stmt] of points.stmtDone ?? new Map()) {
  const p = {
    rec: get('recStart', triggerId),
    pub: get('hintPub', triggerId),
    recv: get('hintRecv', triggerId),
    stmt,
    added: get('published', triggerId),
    enter: get('wEnter', stmt.task),
    started: get('wStarted', stmt.task),
    arrived: get('wArrived', stmt.task),
    dequeued: get('wDequeued', stmt.task),
  };
  if (Object.values(p).every(Boolean)) paths.push(p);
}
const q = (a, f) => a[Math.min(a.length - 1, Math.floor(f * a.length))];
console.log(`${paths.length} resumes with every point (of ${points.stmtDone?.size ?? 0} resumed)`);
console.log(`${'hop, ms'.padEnd(50)} ${['p50', 'p90', 'p99', 'max', 'tail'].map((h) => h.padStart(7)).join(' ')}`);
const total = HOPS[HOPS.length - 1][1];
const tail = [...paths].sort((a, b) => total(a) - total(b)).slice(Math.floor(0.99 * paths.length));
for (const [name, f] of HOPS) {
  const a = paths.map(f).sort((x, y) => x - y);
  const tailMean = tail.reduce((s, p) => s + f(p), 0) / Math.max(1, tail.length);
  console.log(`${name.padEnd(50)} ${[q(a, 0.5), q(a, 0.9), q(a, 0.99), a[a.length - 1], tailMean].map((v) => v.toFixed(1).padStart(7)).join(' ')}`);
}
console.log('("tail" = mean of each hop over the slowest 1 % of resumes)');
for (const l of lags)
  console.log(
    `event-loop lag ${path.basename(path.dirname(path.dirname(l.id)))}: p50 ${l.p50.toFixed(1)}, p90 ${l.p90.toFixed(1)}, p99 ${l.p99.toFixed(1)}, max ${l.max.toFixed(1)} ms`,
  );

#!/usr/bin/env node
// Runs the whole test suite: type-checks the end-to-end tests, runs unit and integration tests in
// parallel and the end-to-end tests (which start the apps as processes) one file at a time, then
// prints one line `N passed, N failed, N skipped` taken from Jest's own JSON results.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const jest = path.join(root, 'node_modules/jest/bin/jest.js');
const tsc = path.join(root, 'node_modules/typescript/bin/tsc');
const extra = process.argv.slice(2);

const check = spawnSync(process.execPath, [tsc, '-p', 'test/tsconfig.json'], { cwd: root, stdio: 'inherit' });
if (check.status !== 0) {
  console.log('0 passed, 1 failed');
  process.exit(1);
}

// Lint (oxlint, type-aware; warnings fail too) and the formatter's check (Biome), before any test
// runs. DEFERRABLE_TEST_LINT=0 skips them (for a quick local run; CI never sets it).
if (process.env.DEFERRABLE_TEST_LINT !== '0') {
  const tools = [
    { name: 'lint', args: [path.join(root, 'node_modules/oxlint/bin/oxlint'), '--type-aware', '--report-unused-disable-directives', '--deny-warnings'] },
    { name: 'format check', args: [path.join(root, 'node_modules/@biomejs/biome/bin/biome'), 'format', '.'] },
  ];
  for (const { name, args } of tools) {
    const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) {
      console.error(`${name} failed (npm run lint / npm run format to fix)`);
      console.log('0 passed, 1 failed');
      process.exit(1);
    }
  }
}

const runs = [
  { name: 'unit+integration', args: ['--selectProjects', 'unit', '--maxWorkers=2'] },
  { name: 'e2e', args: ['--selectProjects', 'e2e', '--runInBand'] },
];
let passed = 0;
let failed = 0;
let skipped = 0;
let exitCode = 0;
for (const run of runs) {
  const out = path.join(root, `.jest-results-${run.name.replace(/\W/g, '')}.json`);
  rmSync(out, { force: true });
  const r = spawnSync(process.execPath, [jest, ...run.args, '--json', `--outputFile=${out}`, ...extra], { cwd: root, stdio: 'inherit' });
  if (!existsSync(out)) {
    console.error(`jest (${run.name}) wrote no results (exit ${r.status})`);
    failed += 1;
    exitCode = 1;
    continue;
  }
  const results = JSON.parse(readFileSync(out, 'utf8'));
  passed += results.numPassedTests;
  failed += results.numFailedTests;
  skipped += results.numPendingTests + results.numTodoTests;
  // A suite that failed to run (syntax error, failing hook) counts as a failure too.
  failed += results.testResults.filter((t) => t.status === 'failed' && t.assertionResults.every((a) => a.status !== 'failed')).length;
  if (r.status !== 0) exitCode = 1;
}
if (failed > 0) exitCode = 1;
const line = `${passed} passed, ${failed} failed, ${skipped} skipped`;
writeFileSync(path.join(root, '.test-summary'), `${line}\n`);
console.log(line);
process.exit(exitCode);

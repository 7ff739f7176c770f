// Generates the Prisma client offline. Prisma 7's CLI wants a native schema engine before
// `generate`, which cannot be downloaded here; `generate` never runs it, so any executable will do.
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const root = path.resolve(__dirname, '../../..');
const prisma = require.resolve('prisma/build/index.js', { paths: [root] });
const result = spawnSync(process.execPath, [prisma, 'generate', '--no-hints', '--schema', 'prisma/schema.prisma'], {
  cwd: root,
  env: { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY || process.execPath },
  encoding: 'utf8',
});
if (result.status !== 0) {
  process.stderr.write(result.stdout + result.stderr);
  process.exit(result.status ?? 1);
}

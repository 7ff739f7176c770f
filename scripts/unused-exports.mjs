#!/usr/bin/env node
// Lists what nothing uses: exported declarations of packages/*/src and apps/*/src that no other
// file imports (and those imported only by tests), and dependencies of each package.json that no
// file of that workspace imports or names. A text scan of import statements, resolved to files and
// workspace packages; `export * from` chains count as a package's public surface, not as a use.
// Usage: node scripts/unused-exports.mjs [--json]. Exits 1 when it finds something.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SKIP_DIRS = new Set(['node_modules', 'dist', 'generated', '.git', '.turbo', 'coverage', 'results']);
const SOURCE = /\.(ts|mts|cts|js|mjs|cjs)$/;

function walk(dir, out = []) {
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) {
      if (!SKIP_DIRS.has(e.name)) walk(path.join(dir, e.name), out);
    } else if (SOURCE.test(e.name) && !e.name.endsWith('.d.ts')) out.push(path.join(dir, e.name));
  }
  return out;
}

// Workspaces: name -> directory.
const rootPkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
const workspaces = new Map();
for (const pattern of rootPkg.workspaces ?? []) {
  const dirs = pattern.endsWith('/*')
    ? readdirSync(path.join(root, pattern.slice(0, -2))).map((d) => path.join(root, pattern.slice(0, -2), d))
    : [path.join(root, pattern)];
  for (const dir of dirs) {
    const file = path.join(dir, 'package.json');
    if (existsSync(file)) workspaces.set(JSON.parse(readFileSync(file, 'utf8')).name, dir);
  }
}
const workspaceOf = (file) => [...workspaces.values()].find((dir) => file.startsWith(dir + path.sep)) ?? root;

const files = [
  ...walk(path.join(root, 'packages')),
  ...walk(path.join(root, 'apps')),
  ...walk(path.join(root, 'bench')),
  ...walk(path.join(root, 'test')),
  ...walk(path.join(root, 'scripts')),
];
for (const f of readdirSync(root)) if (SOURCE.test(f)) files.push(path.join(root, f));
const text = new Map(files.map((f) => [f, readFileSync(f, 'utf8')]));
const isTest = (f) => /\.test\.[cm]?[jt]s$/.test(f) || f.startsWith(path.join(root, 'test') + path.sep);
const isProduct = (f) => /^(packages|apps)\/[^/]+\/src\//.test(path.relative(root, f)) && !isTest(f);

/** Where an import specifier leads: a file, or a workspace package (its whole public surface). */
function resolve(from, spec) {
  if (spec.startsWith('.')) {
    const base = path.resolve(path.dirname(from), spec);
    for (const c of [base, `${base}.ts`, `${base}.js`, path.join(base, 'index.ts')]) if (existsSync(c) && statSync(c).isFile()) return { file: c };
    return null;
  }
  const m = /^(@[^/]+\/[^/]+|[^@/][^/]*)(\/.*)?$/.exec(spec);
  if (!m || !workspaces.has(m[1])) return null;
  const dir = workspaces.get(m[1]);
  if (m[2]) {
    // A deep import such as @deferrable/testkit/dist/fixtures names one source file.
    const src = path.join(dir, m[2].replace(/^\/dist\//, '/src/').replace(/\.js$/, ''));
    for (const c of [`${src}.ts`, path.join(src, 'index.ts')]) if (existsSync(c)) return { file: c };
  }
  return { pkg: dir };
}

// Every named import: [importing file, name, target].
const imports = [];
const IMPORT = /(?:import|export)\s+(?:type\s+)?(?:[\w$]+\s*,\s*)?\{([^}]*)\}\s*from\s*['"]([^'"]+)['"]/g;
const NAMESPACE = /import\s+\*\s+as\s+([\w$]+)\s+from\s*['"]([^'"]+)['"]/g;
const SPECS = /(?:from\s*|require\(\s*|import\(\s*)['"]([^'"]+)['"]/g;
for (const [file, src] of text) {
  for (const m of src.matchAll(IMPORT)) {
    const target = resolve(file, m[2]);
    if (!target) continue;
    for (const part of m[1].split(',')) {
      const name = part
        .trim()
        .replace(/^type\s+/, '')
        .split(/\s+as\s+/)[0]
        ?.trim();
      if (name) imports.push({ file, name, target });
    }
  }
  for (const m of src.matchAll(NAMESPACE)) {
    const target = resolve(file, m[2]);
    if (!target) continue;
    for (const u of src.matchAll(new RegExp(`\\b${m[1]}\\.([\\w$]+)`, 'g'))) imports.push({ file, name: u[1], target });
  }
}

// Default exports are entry points named by path (Jest's globalSetup), not imported by name.
const EXPORT_DECL = /^export\s+(?:declare\s+)?(?:async\s+)?(?:abstract\s+)?(function\*?|const|let|var|class|interface|type|enum)\s+([\w$]+)/gm;
// A registration module (DEFERRABLE_MODULES) is loaded by path; loadModules reads these two exports.
const REGISTRATION_EXPORTS = new Set(['tasks', 'triggers']);
const EXPORT_LIST = /^export\s+(?:type\s+)?\{([^}]*)\}\s*;/gm;
const unused = [];
const testOnly = [];
const ownFileOnly = [];
for (const [file, src] of text) {
  if (!isProduct(file)) continue;
  const names = new Map();
  for (const m of src.matchAll(EXPORT_DECL)) names.set(m[2], m[1] === 'interface' || m[1] === 'type' ? 'type' : 'value');
  for (const m of src.matchAll(EXPORT_LIST))
    for (const p of m[1].split(',')) {
      const n = p
        .trim()
        .replace(/^type\s+/, '')
        .split(/\s+as\s+/)
        .pop()
        ?.trim();
      if (n) names.set(n, /^\s*type\s/.test(p) ? 'type' : 'value');
    }
  const pkg = workspaceOf(file);
  const registration = /\bexport const (tasks|triggers)\b/.test(src) && /defineTask|defineTriggerType/.test(src);
  for (const [name, kind] of names) {
    if (registration && REGISTRATION_EXPORTS.has(name)) continue;
    const users = imports.filter(
      (i) =>
        i.name === name &&
        i.file !== file &&
        (i.target.file === file ||
          (i.target.pkg === pkg && workspaceOf(i.file) !== pkg) ||
          (i.target.file?.endsWith(`${path.sep}index.ts`) && workspaceOf(i.target.file) === pkg)),
    );
    const real = users;
    const where = `${path.relative(root, file)}: ${name}${kind === 'type' ? ' (type)' : ''}`;
    const usedHere = new RegExp(`\\b${name.replace(/\$/g, '\\$')}\\b`, 'g');
    const localUses = (src.match(usedHere) ?? []).length - 1;
    if (real.length === 0) (localUses > 0 ? ownFileOnly : unused).push(where);
    else if (real.every((u) => isTest(u.file))) testOnly.push(`${where} (${[...new Set(real.map((u) => path.relative(root, u.file)))].join(', ')})`);
  }
}

// Dependencies no file of their workspace names (the root's: no file of the repository).
const unusedDeps = [];
for (const [name, dir] of [['(root)', root], ...workspaces]) {
  const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const scripts = Object.values(pkg.scripts ?? {}).join('\n');
  // Generated code (the Prisma client) counts here: it imports its runtime.
  const generated = walk(path.join(dir, 'src', 'generated'), []).concat(dir === root ? walk(path.join(root, 'packages', 'db', 'src', 'generated'), []) : []);
  const mine = [...text, ...generated.map((f) => [f, readFileSync(f, 'utf8')])].filter(([f]) => dir === root || workspaceOf(f) === dir);
  const specs = new Set();
  for (const [, src] of mine) for (const m of src.matchAll(SPECS)) specs.add(m[1]);
  // require.resolve(`@deferrable/${name}/...`): every workspace package it could name counts.
  const templated = mine.some(([, src]) => src.includes('`@deferrable/${'));
  for (const dep of Object.keys({ ...pkg.dependencies, ...(dir === root ? {} : pkg.devDependencies) })) {
    const used =
      (templated && dep.startsWith('@deferrable/')) ||
      [...specs].some((s) => s === dep || s.startsWith(`${dep}/`)) ||
      mine.some(([, src]) => src.includes(`'${dep}'`)) ||
      scripts.includes(dep);
    if (!used) unusedDeps.push(`${name}: ${dep}`);
  }
}

const report = { unusedExports: unused, exportedButOnlyUsedInTheirOwnFile: ownFileOnly, exportsUsedOnlyByTests: testOnly, unusedDependencies: unusedDeps };
if (process.argv.includes('--json')) console.log(JSON.stringify(report, null, 2));
else {
  for (const [title, list] of Object.entries(report)) {
    console.log(`${title} (${list.length}):`);
    for (const line of list) console.log(`  ${line}`);
  }
}
process.exit(unused.length + ownFileOnly.length + unusedDeps.length > 0 ? 1 : 0);

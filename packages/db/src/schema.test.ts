/**
 * Proves that prisma/schema.prisma and the hand-written migrations agree: a freshly migrated
 * database must have exactly the tables, columns (type, nullability, default presence), enums,
 * indexes (unique or not, columns, order and partial-index predicate), primary keys and foreign keys that Prisma would
 * create for the schema. Prisma's own `migrate diff` needs a native engine that cannot be installed
 * here, so the expected database is derived from the schema in this file. The generated client's
 * data model is checked against the same parse, so a stale client fails too.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createTestEnv, type TestEnv } from '@deferrable/testkit';
import type { PoolClient } from 'pg';
import { createDb, type Db, type Queryable } from './client';

const SCHEMA_PATH = path.resolve(__dirname, '../../../prisma/schema.prisma');

// ---------------------------------------------------------------------------------------------
// The expected database, from the schema text
// ---------------------------------------------------------------------------------------------

interface Attribute {
  name: string;
  args: string | null;
}

interface ParsedField {
  name: string;
  type: string;
  list: boolean;
  optional: boolean;
  attrs: Attribute[];
  column: string;
}

interface ParsedModel {
  name: string;
  table: string;
  fields: ParsedField[];
  blockAttrs: Attribute[];
}

interface ParsedSchema {
  models: Map<string, ParsedModel>;
  /** Prisma enum name -> { database type name, values }. */
  enums: Map<string, { dbName: string; values: string[] }>;
}

/** Removes `//` comments outside string literals. */
function stripComments(text: string): string {
  return text
    .split('\n')
    .map((line) => {
      let inString = false;
      for (let i = 0; i < line.length; i++) {
        const ch = line[i];
        if (ch === '"' && line[i - 1] !== '\\') inString = !inString;
        if (!inString && ch === '/' && line[i + 1] === '/') return line.slice(0, i);
      }
      return line;
    })
    .join('\n');
}

/** Reads `@name` and `@name(balanced args)` attributes, honouring quotes and nesting. */
function parseAttributes(text: string): Attribute[] {
  const attrs: Attribute[] = [];
  let i = 0;
  while (i < text.length) {
    if (text[i] !== '@') {
      i++;
      continue;
    }
    const m = /^@@?[\w.]+/.exec(text.slice(i));
    if (!m) throw new Error(`cannot read attribute at: ${text.slice(i)}`);
    const name = m[0];
    i += name.length;
    let args: string | null = null;
    if (text[i] === '(') {
      let depth = 0;
      let inString = false;
      const start = i + 1;
      for (; i < text.length; i++) {
        const ch = text[i];
        if (ch === '"' && text[i - 1] !== '\\') inString = !inString;
        if (inString) continue;
        if (ch === '(') depth++;
        if (ch === ')' && --depth === 0) break;
      }
      if (depth !== 0) throw new Error(`unbalanced attribute: ${text}`);
      args = text.slice(start, i);
      i++;
    }
    attrs.push({ name, args });
  }
  return attrs;
}

/** Splits on commas at nesting depth 0. */
function splitTopLevel(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let inString = false;
  let current = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '"' && text[i - 1] !== '\\') inString = !inString;
    if (!inString && (ch === '(' || ch === '[')) depth++;
    if (!inString && (ch === ')' || ch === ']')) depth--;
    if (!inString && depth === 0 && ch === ',') {
      out.push(current.trim());
      current = '';
    } else current += ch;
  }
  if (current.trim()) out.push(current.trim());
  return out;
}

const unquote = (s: string): string => {
  const m = /^\s*"(.*)"\s*$/.exec(s);
  if (!m) throw new Error(`expected a string literal, got ${s}`);
  return m[1]!;
};

/** The value of a named argument (`map: "x"`, `onDelete: Cascade`, `fields: [a, b]`). */
function namedArg(args: string | null, name: string): string | undefined {
  if (!args) return undefined;
  for (const part of splitTopLevel(args)) {
    const m = new RegExp(`^${name}\\s*:\\s*([\\s\\S]*)$`).exec(part);
    if (m) return m[1]!.trim();
  }
  return undefined;
}

/** The first positional argument, e.g. the field list of @@index([a, b], map: "x"). */
function firstPositional(args: string | null): string | undefined {
  if (!args) return undefined;
  const first = splitTopLevel(args)[0];
  return first !== undefined && !/^\w+\s*:/.test(first) ? first : undefined;
}

function listItems(list: string): string[] {
  const m = /^\[([\s\S]*)\]$/.exec(list.trim());
  if (!m) throw new Error(`expected a list, got ${list}`);
  return splitTopLevel(m[1]!);
}

const attr = (attrs: Attribute[], name: string): Attribute | undefined => attrs.find((a) => a.name === name);

function parsePrismaSchema(text: string): ParsedSchema {
  const clean = stripComments(text);
  const models = new Map<string, ParsedModel>();
  const enums = new Map<string, { dbName: string; values: string[] }>();
  const blockRe = /^\s*(model|enum|type|view)\s+(\w+)\s*\{([\s\S]*?)^\s*\}/gm;
  for (const m of clean.matchAll(blockRe)) {
    const [, kind, name, body] = m as unknown as [string, string, string, string];
    if (kind === 'type' || kind === 'view') throw new Error(`the schema test does not handle ${kind} blocks yet`);
    const lines = body
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    if (kind === 'enum') {
      const values = lines.filter((l) => !l.startsWith('@@')).map((l) => l.split(/\s+/)[0]!);
      const map = attr(parseAttributes(lines.filter((l) => l.startsWith('@@')).join(' ')), '@@map');
      enums.set(name, { dbName: map ? unquote(map.args!) : name, values });
      continue;
    }
    const fields: ParsedField[] = [];
    const blockAttrs: Attribute[] = [];
    for (const line of lines) {
      if (line.startsWith('@@')) {
        blockAttrs.push(...parseAttributes(line));
        continue;
      }
      const f = /^(\w+)\s+(\w+)(\[\])?(\?)?(?:\s+([\s\S]*))?$/.exec(line);
      if (!f) throw new Error(`cannot read field line in model ${name}: ${line}`);
      const attrs = parseAttributes(f[5] ?? '');
      const map = attr(attrs, '@map');
      fields.push({
        name: f[1]!,
        type: f[2]!,
        list: f[3] !== undefined,
        optional: f[4] !== undefined,
        attrs,
        column: map ? unquote(map.args!) : f[1]!,
      });
    }
    const map = attr(blockAttrs, '@@map');
    models.set(name, { name, table: map ? unquote(map.args!) : name, fields, blockAttrs });
  }
  if (models.size === 0) throw new Error('no models found in the schema');
  return { models, enums };
}

const NATIVE_TYPES: Record<string, (args: string[]) => string> = {
  Uuid: () => 'uuid',
  Text: () => 'text',
  VarChar: ([n]) => (n ? `character varying(${n})` : 'character varying'),
  Char: ([n]) => `character(${n ?? 1})`,
  Integer: () => 'integer',
  SmallInt: () => 'smallint',
  BigInt: () => 'bigint',
  DoublePrecision: () => 'double precision',
  Real: () => 'real',
  Decimal: ([p, s]) => `numeric(${p ?? 65},${s ?? 30})`,
  Boolean: () => 'boolean',
  Timestamptz: ([p]) => `timestamp(${p ?? 6}) with time zone`,
  Timestamp: ([p]) => `timestamp(${p ?? 6}) without time zone`,
  Date: () => 'date',
  JsonB: () => 'jsonb',
  Json: () => 'json',
  ByteA: () => 'bytea',
};

// Prisma's default PostgreSQL type for each scalar when no @db attribute is given.
const DEFAULT_TYPES: Record<string, string> = {
  String: 'text',
  Int: 'integer',
  BigInt: 'bigint',
  Float: 'double precision',
  Decimal: 'numeric(65,30)',
  Boolean: 'boolean',
  DateTime: 'timestamp(3) without time zone',
  Json: 'jsonb',
  Bytes: 'bytea',
};

// Prisma's referential actions as pg_constraint.confdeltype / confupdtype codes.
const ACTIONS: Record<string, string> = { Cascade: 'c', Restrict: 'r', NoAction: 'a', SetNull: 'n', SetDefault: 'd' };

/** One line per fact, so that a mismatch reads as a short list of differences. */
interface DatabaseFacts {
  enums: string[];
  columns: string[];
  indexes: string[];
  foreignKeys: string[];
}

function columnType(schema: ParsedSchema, model: ParsedModel, f: ParsedField): string {
  let base: string;
  const native = f.attrs.find((a) => a.name.startsWith('@db.'));
  const en = schema.enums.get(f.type);
  if (en) base = en.dbName;
  else if (native) {
    const name = native.name.slice('@db.'.length);
    const make = NATIVE_TYPES[name];
    if (!make) throw new Error(`the schema test does not know @db.${name} (${model.name}.${f.name})`);
    base = make(native.args ? splitTopLevel(native.args) : []);
  } else {
    const t = DEFAULT_TYPES[f.type];
    if (!t) throw new Error(`the schema test does not know the type ${f.type} (${model.name}.${f.name})`);
    base = t;
  }
  return f.list ? `${base}[]` : base;
}

/** What Prisma's migrate would create for this schema on PostgreSQL. */
function expectedFacts(schema: ParsedSchema): DatabaseFacts {
  const facts: DatabaseFacts = { enums: [], columns: [], indexes: [], foreignKeys: [] };
  for (const [, e] of schema.enums) facts.enums.push(`enum ${e.dbName} (${e.values.join(', ')})`);

  for (const model of schema.models.values()) {
    const table = model.table;
    const byName = new Map(model.fields.map((f) => [f.name, f]));
    const columnOf = (fieldRef: string): string => {
      // An index item may carry arguments: priority(sort: Desc).
      const m = /^(\w+)(?:\(([\s\S]*)\))?$/.exec(fieldRef.trim());
      if (!m) throw new Error(`cannot read index field ${fieldRef} in ${model.name}`);
      const field = byName.get(m[1]!);
      if (!field) throw new Error(`index of ${model.name} names an unknown field ${m[1]}`);
      const desc = namedArg(m[2] ?? null, 'sort') === 'Desc';
      return desc ? `${field.column} DESC` : field.column;
    };
    const index = (kind: 'index' | 'unique' | 'primary key', name: string, cols: string[], where?: string) =>
      facts.indexes.push(`${kind} ${table}.${name} (${cols.join(', ')})${where ? ` WHERE ${where}` : ''}`);

    for (const f of model.fields) {
      const target = schema.models.get(f.type);
      if (target) {
        // A relation field: no column; the side holding `fields:` owns a foreign key.
        const rel = attr(f.attrs, '@relation');
        const fieldsArg = namedArg(rel?.args ?? null, 'fields');
        if (!rel || !fieldsArg) continue;
        const cols = listItems(fieldsArg).map((n) => byName.get(n)!.column);
        const targetByName = new Map(target.fields.map((tf) => [tf.name, tf]));
        const refs = listItems(namedArg(rel.args, 'references')!).map((n) => targetByName.get(n)!.column);
        const onDelete = namedArg(rel.args, 'onDelete') ?? (f.optional ? 'SetNull' : 'Restrict');
        const onUpdate = namedArg(rel.args, 'onUpdate') ?? 'Cascade';
        const name = namedArg(rel.args, 'map') ? unquote(namedArg(rel.args, 'map')!) : `${table}_${cols.join('_')}_fkey`;
        facts.foreignKeys.push(
          `foreign key ${table}.${name} (${cols.join(', ')}) -> ${target.table} (${refs.join(', ')}) on delete ${ACTIONS[onDelete]} on update ${ACTIONS[onUpdate]}`,
        );
        continue;
      }
      // Prisma never adds NOT NULL to a scalar list column; it may be NULL in the database.
      const nullable = f.optional || f.list;
      const hasDefault = attr(f.attrs, '@default') !== undefined;
      facts.columns.push(`column ${table}.${f.column} ${columnType(schema, model, f)} ${nullable ? 'NULL' : 'NOT NULL'}${hasDefault ? ' DEFAULT' : ''}`);
      const id = attr(f.attrs, '@id');
      if (id) index('primary key', namedArg(id.args, 'map') ? unquote(namedArg(id.args, 'map')!) : `${table}_pkey`, [f.column]);
      const unique = attr(f.attrs, '@unique');
      if (unique) {
        const map = namedArg(unique.args, 'map');
        index('unique', map ? unquote(map) : `${table}_${f.column}_key`, [f.column]);
      }
    }

    for (const a of model.blockAttrs) {
      if (a.name === '@@map') continue;
      const list = firstPositional(a.args) ?? namedArg(a.args, 'fields');
      if (!list) throw new Error(`cannot read ${a.name}(${a.args}) in ${model.name}`);
      const cols = listItems(list).map(columnOf);
      const bare = cols.map((c) => c.replace(/ DESC$/, ''));
      const map = namedArg(a.args, 'map');
      // A partial index: `where: raw("...")`, the predicate as PostgreSQL prints it.
      const whereArg = namedArg(a.args, 'where');
      const rawWhere = whereArg === undefined ? undefined : /^raw\(\s*("(?:[^"\\]|\\.)*")\s*\)$/.exec(whereArg);
      if (whereArg !== undefined && !rawWhere) throw new Error(`the schema test reads only where: raw("...") (${model.name})`);
      const where = rawWhere ? (JSON.parse(rawWhere[1]!) as string) : undefined;
      if (a.name === '@@index') index('index', map ? unquote(map) : `${table}_${bare.join('_')}_idx`, cols, where);
      else if (a.name === '@@unique') index('unique', map ? unquote(map) : `${table}_${bare.join('_')}_key`, cols, where);
      else if (a.name === '@@id') index('primary key', map ? unquote(map) : `${table}_pkey`, cols);
      else throw new Error(`the schema test does not handle ${a.name} (${model.name})`);
    }
  }
  for (const k of Object.keys(facts) as (keyof DatabaseFacts)[]) facts[k].sort();
  return facts;
}

// ---------------------------------------------------------------------------------------------
// The actual database, from the catalogue
// ---------------------------------------------------------------------------------------------

const IGNORED_TABLES = ['_prisma_migrations'];

async function databaseFacts(db: Queryable): Promise<DatabaseFacts> {
  const enums = await db.query<{ name: string; labels: string[] }>(
    `SELECT t.typname AS name, array_agg(e.enumlabel::text ORDER BY e.enumsortorder) AS labels
     FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE n.nspname = 'public' GROUP BY t.typname`,
  );
  const columns = await db.query<{ table: string; column: string; type: string; nullable: boolean; has_default: boolean }>(
    `SELECT c.relname AS table, a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type,
            NOT a.attnotnull AS nullable, a.atthasdef AS has_default
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
       AND c.relname <> ALL($1::text[])`,
    [IGNORED_TABLES],
  );
  const indexes = await db.query<{ table: string; name: string; unique: boolean; primary: boolean; columns: string[]; predicate: string | null }>(
    `SELECT t.relname AS table, i.relname AS name, ix.indisunique AS unique, ix.indisprimary AS primary,
            pg_get_expr(ix.indpred, ix.indrelid) AS predicate,
            array(SELECT replace(pg_get_indexdef(ix.indexrelid, k + 1, true), '"', '')
                         || CASE WHEN ix.indoption[k] & 1 = 1 THEN ' DESC' ELSE '' END
                  FROM generate_series(0, ix.indnatts - 1) AS k ORDER BY k) AS columns
     FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid
     JOIN pg_namespace n ON n.oid = t.relnamespace
     WHERE n.nspname = 'public' AND t.relname <> ALL($1::text[])`,
    [IGNORED_TABLES],
  );
  const fks = await db.query<{
    table: string;
    name: string;
    columns: string[];
    ref_table: string;
    ref_columns: string[];
    on_delete: string;
    on_update: string;
  }>(
    `SELECT t.relname AS table, c.conname AS name, r.relname AS ref_table,
            array(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(n, o)
                  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o) AS columns,
            array(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k(n, o)
                  JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o) AS ref_columns,
            c.confdeltype AS on_delete, c.confupdtype AS on_update
     FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class r ON r.oid = c.confrelid
     JOIN pg_namespace n ON n.oid = t.relnamespace
     WHERE c.contype = 'f' AND n.nspname = 'public'`,
  );
  const facts: DatabaseFacts = {
    enums: enums.rows.map((e) => `enum ${e.name} (${e.labels.join(', ')})`),
    columns: columns.rows.map((c) => `column ${c.table}.${c.column} ${c.type} ${c.nullable ? 'NULL' : 'NOT NULL'}${c.has_default ? ' DEFAULT' : ''}`),
    indexes: indexes.rows.map(
      (i) =>
        `${i.primary ? 'primary key' : i.unique ? 'unique' : 'index'} ${i.table}.${i.name} (${i.columns.join(', ')})${i.predicate ? ` WHERE ${i.predicate}` : ''}`,
    ),
    foreignKeys: fks.rows.map(
      (f) =>
        `foreign key ${f.table}.${f.name} (${f.columns.join(', ')}) -> ${f.ref_table} (${f.ref_columns.join(', ')}) on delete ${f.on_delete} on update ${f.on_update}`,
    ),
  };
  for (const k of Object.keys(facts) as (keyof DatabaseFacts)[]) facts[k].sort();
  return facts;
}

/** The differences, per side; both empty when the schema and the database agree. */
function compareFacts(expected: DatabaseFacts, actual: DatabaseFacts): { onlyInSchema: string[]; onlyInDatabase: string[] } {
  const all = (f: DatabaseFacts) => [...f.enums, ...f.columns, ...f.indexes, ...f.foreignKeys];
  const e = new Set(all(expected));
  const a = new Set(all(actual));
  return { onlyInSchema: [...e].filter((x) => !a.has(x)), onlyInDatabase: [...a].filter((x) => !e.has(x)) };
}

// ---------------------------------------------------------------------------------------------

const SCHEMA_TEXT = readFileSync(SCHEMA_PATH, 'utf8');
const NO_DIFFERENCE = { onlyInSchema: [], onlyInDatabase: [] };

let env: TestEnv;
let db: Db;

beforeAll(async () => {
  env = await createTestEnv('schema');
  // The client generated into src/generated/prisma from schema.prisma.
  db = createDb({ url: env.databaseUrl, poolMax: 2, applicationName: 'deferrable-schema-test' });
});

afterAll(async () => {
  await db?.close();
  await env?.cleanup();
});

/** Inserts `line` before the closing brace of `model`. */
function addToModel(schemaText: string, model: string, line: string): string {
  const re = new RegExp(`(model ${model} \\{[\\s\\S]*?)(\\n\\})`);
  if (!re.test(schemaText)) throw new Error(`model ${model} not found`);
  return schemaText.replace(re, `$1\n  ${line}$2`);
}

describe('schema.prisma and the migrations', () => {
  it('a migrated database has exactly what the schema describes', async () => {
    const expected = expectedFacts(parsePrismaSchema(SCHEMA_TEXT));
    const actual = await databaseFacts(env.db.pool);
    expect(compareFacts(expected, actual)).toEqual(NO_DIFFERENCE);
    // Sanity: the comparison looked at something.
    expect(expected.columns.length).toBeGreaterThan(40);
    expect(expected.indexes.length).toBeGreaterThan(10);
    expect(expected.foreignKeys).toHaveLength(3);
    expect(expected.enums).toHaveLength(1);
  });

  it('the generated client has the models, fields and column names of the schema (it is not stale)', () => {
    type RuntimeField = { name: string; kind: 'scalar' | 'enum' | 'object'; type: string; dbName?: string | null };
    type RuntimeModel = { dbName: string | null; fields: RuntimeField[] };
    const runtime = (db.prisma as unknown as { _runtimeDataModel: { models: Record<string, RuntimeModel> } })._runtimeDataModel;
    const schema = parsePrismaSchema(SCHEMA_TEXT);
    const fromClient = Object.entries(runtime.models).map(([name, m]) => ({
      name,
      table: m.dbName ?? name,
      fields: m.fields.map((f) => `${f.name}:${f.kind}:${f.type}:${f.kind === 'object' ? '' : (f.dbName ?? f.name)}`),
    }));
    const fromSchema = [...schema.models.values()].map((m) => ({
      name: m.name,
      table: m.table,
      fields: m.fields.map((f) => {
        const kind = schema.models.has(f.type) ? 'object' : schema.enums.has(f.type) ? 'enum' : 'scalar';
        return `${f.name}:${kind}:${f.type}:${kind === 'object' ? '' : f.column}`;
      }),
    }));
    expect(fromClient).toEqual(fromSchema);
  });

  it('the generated client reads and writes every model against the migrated database', async () => {
    const { prisma } = db;
    const job = await prisma.job.create({ data: { id: randomUUID(), jobType: 'worker', hostname: 'h', pid: 1, state: 'running' } });
    expect(job.queues).toEqual([]);
    const trigger = await prisma.trigger.create({ data: { id: randomUUID(), classpath: 'datetime', kwargs: 'v1.x', triggererId: job.id } });
    const task = await prisma.taskInstance.create({
      data: { id: randomUUID(), taskName: 't', state: 'deferred', triggerId: trigger.id, args: { a: 1 } },
    });
    expect(task).toMatchObject({ queue: 'default', priority: 0, tryNumber: 1, maxTries: 1, retryBackoff: 2, dispatchAttempt: 0 });
    const transitions = await prisma.taskTransition.findMany({ where: { taskInstanceId: task.id } });
    expect(transitions.map((t) => [t.fromState, t.toState])).toEqual([[null, 'deferred']]);
    const rejection = await prisma.rejection.create({ data: { source: 'test', reason: 'r' } });
    expect(typeof rejection.id).toBe('bigint');
    // onDelete: SetNull, as the schema says.
    await prisma.trigger.delete({ where: { id: trigger.id } });
    expect((await prisma.taskInstance.findUniqueOrThrow({ where: { id: task.id } })).triggerId).toBeNull();
  });

  describe('the comparison fails when only one side changes (checked on copies)', () => {
    let actual: DatabaseFacts;
    beforeAll(async () => {
      actual = await databaseFacts(env.db.pool);
    });

    it.each([
      ['a column added to the schema', (s: string) => addToModel(s, 'Job', 'extraNote String? @map("extra_note")'), 'column job.extra_note text NULL'],
      [
        'an index added to the schema',
        (s: string) => addToModel(s, 'Job', '@@index([hostname], map: "job_hostname_idx")'),
        'index job.job_hostname_idx (hostname)',
      ],
      [
        'a unique field in the schema',
        (s: string) => s.replace('hostname        String', 'hostname        String @unique'),
        'unique job.job_hostname_key (hostname)',
      ],
      ['a column made optional', (s: string) => s.replace('pid             Int', 'pid             Int?'), 'column job.pid integer NULL'],
      ['a default dropped', (s: string) => s.replace('capacity        Int       @default(0)', 'capacity        Int'), 'column job.capacity integer NOT NULL'],
      [
        'a type changed',
        (s: string) => s.replace('classpath   String', 'classpath   String @db.VarChar(200)'),
        'column trigger.classpath character varying(200) NOT NULL',
      ],
      [
        'an index order changed',
        (s: string) => s.replace('priority(sort: Desc)', 'priority'),
        'index task_instance.task_instance_dispatch_idx (queue, priority, run_after)',
      ],
      [
        'a partial index predicate changed',
        (s: string) => s.replace(`where: raw("(state = 'running'::task_state)")`, `where: raw("(state = 'queued'::task_state)")`),
        `index task_instance.task_instance_heartbeat_idx (heartbeat_at) WHERE (state = 'queued'::task_state)`,
      ],
      [
        'an index made partial in the schema',
        (s: string) =>
          s.replace(
            '@@index([createdAt], map: "rejection_created_idx")',
            '@@index([createdAt], map: "rejection_created_idx", where: raw("(job_id IS NOT NULL)"))',
          ),
        'index rejection.rejection_created_idx (created_at) WHERE (job_id IS NOT NULL)',
      ],
      [
        'an enum value added',
        (s: string) => s.replace('  cancelled\n', '  cancelled\n  removed\n'),
        'enum task_state (scheduled, queued, running, deferred, up_for_retry, success, failed, skipped, cancelled, removed)',
      ],
      ['a referential action changed', (s: string) => s.replace('onDelete: Cascade', 'onDelete: Restrict'), 'on delete r'],
    ])('%s', (_label, edit, expectedLine) => {
      const edited = edit(SCHEMA_TEXT);
      expect(edited).not.toBe(SCHEMA_TEXT);
      const diff = compareFacts(expectedFacts(parsePrismaSchema(edited)), actual);
      expect(diff.onlyInSchema.length).toBeGreaterThan(0);
      expect(diff.onlyInSchema.some((l) => l.includes(expectedLine))).toBe(true);
    });

    it('a column, an index and a foreign key added to the database only', async () => {
      const expected = expectedFacts(parsePrismaSchema(SCHEMA_TEXT));
      const client: PoolClient = await env.db.pool.connect();
      try {
        await client.query('BEGIN');
        await client.query('ALTER TABLE "job" ADD COLUMN "extra_note" TEXT');
        await client.query('CREATE INDEX "job_hostname_idx" ON "job" ("hostname")');
        await client.query('ALTER TABLE "rejection" ADD COLUMN "job_uuid" UUID REFERENCES "job" ("id")');
        await client.query('ALTER TABLE "task_instance" ALTER COLUMN "queue" DROP DEFAULT');
        const diff = compareFacts(expected, await databaseFacts(client));
        expect(diff.onlyInDatabase).toEqual(
          expect.arrayContaining([
            'column job.extra_note text NULL',
            'index job.job_hostname_idx (hostname)',
            'column task_instance.queue text NOT NULL',
            'column rejection.job_uuid uuid NULL',
            'foreign key rejection.rejection_job_uuid_fkey (job_uuid) -> job (id) on delete a on update a',
          ]),
        );
        expect(diff.onlyInDatabase).toHaveLength(5);
        expect(diff.onlyInSchema).toEqual(['column task_instance.queue text NOT NULL DEFAULT']);
      } finally {
        await client.query('ROLLBACK');
        client.release();
      }
      // Rolled back: the database agrees with the schema again.
      expect(compareFacts(expected, await databaseFacts(env.db.pool))).toEqual(NO_DIFFERENCE);
    });
  });
});

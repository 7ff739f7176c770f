/**
 * Migrations on main are never edited or removed: a database migrated at any earlier commit must
 * still migrate (the migrator refuses a migration whose checksum changed). `migrations.sha256`,
 * beside this file, lists the sha256 of every migration that has landed, in `sha256sum` format;
 * this test fails if one of them changed or disappeared, or if a migration is not listed.
 *
 * Adding a migration: append its line, from the repository root,
 *   (cd prisma/migrations && sha256sum NAME/migration.sql) >> packages/db/src/migrations.sha256
 * Check the whole list with: (cd prisma/migrations && sha256sum -c ../../packages/db/src/migrations.sha256)
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { readMigrations } from './migrate';

const LIST = path.join(__dirname, 'migrations.sha256');
const NEVER_EDITED = 'Migrations on main are never edited or removed: restore it, and put the change in a new migration.';

interface Listed {
  name: string;
  checksum: string;
}

function readList(): Listed[] {
  return readFileSync(LIST, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const m = /^([0-9a-f]{64}) [ *]([^/\s]+)\/migration\.sql$/.exec(line.trim());
      if (!m) throw new Error(`migrations.sha256: cannot read the line "${line}" (expected "<sha256>  <name>/migration.sql")`);
      return { checksum: m[1]!, name: m[2]! };
    });
}

describe('migrations are immutable once on main', () => {
  const listed = readList();
  const current = new Map(readMigrations().map((m) => [m.name, m.checksum]));

  it('the list is in name order, without duplicates, and holds at least the first migrations', () => {
    const names = listed.map((l) => l.name);
    expect(names).toEqual([...new Set(names)].sort());
    expect(names).toEqual(expect.arrayContaining(['20261125000000_init', '20261125200000_lean_writes', '20261126020000_trigger_claim_indexes']));
  });

  it.each(listed.map((l) => [l.name, l.checksum] as const))('%s is unchanged', (name, checksum) => {
    const now = current.get(name);
    if (now === undefined) throw new Error(`migration ${name} disappeared from prisma/migrations. ${NEVER_EDITED}`);
    if (now !== checksum) throw new Error(`migration ${name} was edited (sha256 ${checksum} on main, ${now} now). ${NEVER_EDITED}`);
    expect(now).toBe(checksum);
  });

  it('every migration is listed, and new ones sort after the listed ones', () => {
    const names = new Set(listed.map((l) => l.name));
    const last = listed[listed.length - 1]?.name ?? '';
    const problems = [...current.keys()]
      .filter((name) => !names.has(name))
      .map((name) =>
        // A new migration named before a landed one would be applied out of order on existing databases.
        name < last
          ? `migration ${name} sorts before ${last}, which has landed: name new migrations with a later timestamp.`
          : `migration ${name} is not in packages/db/src/migrations.sha256. Once it is final, add it: ` +
            `(cd prisma/migrations && sha256sum ${name}/migration.sql) >> packages/db/src/migrations.sha256`,
      );
    if (problems.length > 0) throw new Error(problems.join('\n'));
    expect(problems).toEqual([]);
  });
});

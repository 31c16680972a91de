import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const PROGRAMS = ['agent/dist/cli.js', 'repo-server/dist/server-cli.js', 'repo-server/dist/admin-cli.js'];
/** Parent of the e2e installs, one per build (named by install.sh's fingerprint). */
const INSTALLS = '/tmp/openrds-e2e-installs';
/** An install unused for this long belongs to an old build: removed. */
const STALE_MS = 24 * 3600_000;

/**
 * Once per e2e run (jest globalSetup, in the parent process, so workers inherit the environment):
 * installs the built programs with deploy/install.sh into a directory the postgres OS user can
 * run them from (PostgreSQL runs archive_command as postgres, and the checkout may sit in a
 * root-only directory), and passes its path as OPENRDS_E2E_PREFIX. Each build gets its own
 * directory, so concurrent runs of different builds never swap programs under each other.
 * Without a build it only warns: the scenarios that need the programs then fail saying so.
 */
export default async function globalSetup(): Promise<void> {
  const missing = PROGRAMS.filter((f) => !fs.existsSync(path.join(ROOT, f)));
  if (missing.length > 0) {
    console.warn(`\ne2e: ${missing.map((f) => `'${f}'`).join(', ')} missing: the programs are not installed ` +
      `(run 'npm run build'); scenarios that run them will fail`);
    return;
  }
  const install = path.join(ROOT, 'deploy', 'install.sh');
  let prefix = process.env.OPENRDS_E2E_PREFIX;
  if (!prefix) {
    const fingerprint = execFileSync('bash', [install, '--fingerprint'], { encoding: 'utf8' }).trim();
    fs.mkdirSync(INSTALLS, { recursive: true, mode: 0o755 });
    fs.chmodSync(INSTALLS, 0o755);
    prefix = path.join(INSTALLS, fingerprint);
    pruneStaleInstalls(prefix);
  }
  execFileSync('bash', [install, '--prefix', prefix, '--quiet'], { stdio: 'inherit' });
  // Marks the install as in use, so that pruning by a later run leaves it alone for a day.
  const now = new Date();
  fs.utimesSync(prefix, now, now);
  process.env.OPENRDS_E2E_PREFIX = prefix;
}

function pruneStaleInstalls(keep: string): void {
  for (const name of fs.readdirSync(INSTALLS)) {
    const dir = path.join(INSTALLS, name);
    if (dir === keep) continue;
    try {
      if (Date.now() - fs.statSync(dir).mtimeMs > STALE_MS) fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // Another run removed it meanwhile.
    }
  }
}

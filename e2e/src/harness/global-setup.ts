import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');

/**
 * Once per e2e run: installs the built programs with deploy/install.sh into a directory the
 * postgres OS user can execute from (PostgreSQL runs archive_command as postgres, and the checkout
 * may sit in a root-only directory), and hands its path to the tests.
 */
export default async function globalSetup(): Promise<void> {
  for (const f of ['agent/dist/cli.js', 'repo-server/dist/server-cli.js', 'repo-server/dist/admin-cli.js']) {
    if (!fs.existsSync(path.join(ROOT, f))) throw new Error(`'${f}' is missing: run 'npm run build' before the e2e tests`);
  }
  const prefix = process.env.OPENRDS_E2E_PREFIX ?? '/tmp/openrds-e2e-install';
  execFileSync('bash', [path.join(ROOT, 'deploy', 'install.sh'), '--prefix', prefix, '--quiet'], { stdio: 'inherit' });
  process.env.OPENRDS_E2E_PREFIX = prefix;
}

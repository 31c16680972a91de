// An encrypted repository (repo1-cipher-type=aes-256-gcm) on a real cluster: the agent seals
// every backup file and WAL segment before it leaves the database host, the repo-server seals
// info files and manifests; no plaintext of the data is anywhere in the repository; a key
// rotation keeps old backups readable with the new passphrase while the old passphrase opens
// nothing written after it; a flipped byte fails authentication.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PgCluster } from './harness/cluster';
import { Stack } from './stack';

jest.setTimeout(900_000);

const PASS1 = 'first passphrase of the e2e repository';
const PASS2 = 'second passphrase, after the rotation';
const MARKER = 'OPENRDS-PLAINTEXT-MARKER-93c1e7';

/** Every file under a directory, recursively. */
function filesUnder(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true, withFileTypes: true }) as fs.Dirent[])
    .filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

describe('encrypted repository (aes-256-gcm)', () => {
  let stack: Stack;
  const restored: PgCluster[] = [];
  const sets: { label: string; rows: number }[] = [];

  beforeAll(async () => {
    // compress-type=none: without encryption the marker would be in the repository verbatim.
    stack = await Stack.create({ version: 15, stanza: 'enc', globalOptions: { 'repo1-cipher-type': 'aes-256-gcm', 'compress-type': 'none' } });
    stack.serverEnv = { OPENRDS_REPO1_CIPHER_PASS: PASS1 };
    await stack.start();
  });
  afterAll(async () => {
    for (const c of restored) await c.destroy().catch(() => undefined);
    await stack?.destroy();
  });

  const rows = async (c: PgCluster): Promise<number> => Number((await c.query('SELECT count(*) AS n FROM marker'))[0].n);
  const restartServer = async (pass: string): Promise<void> => {
    await stack.server!.stop('SIGTERM');
    stack.serverEnv = { OPENRDS_REPO1_CIPHER_PASS: pass };
    await stack.startServer();
  };
  const restore = async (name: string, label: string): Promise<{ code: number; stdout: string; stderr: string; dir: string }> => {
    const dir = stack.restoreDir(name);
    const r = await stack.admin(['restore', `--stanza=${stack.stanza}`, `--set=${label}`, `--pg1-path=${dir}`,
      '--type=immediate', '--target-action=promote', '--archive-mode=off']);
    return { ...r, dir };
  };
  const restoredRows = async (dir: string): Promise<number> => {
    const c = await PgCluster.fromExistingDataDir(dir, { version: 15 });
    restored.push(c);
    await c.start();
    await c.waitPromoted();
    return rows(c);
  };
  const labels = async (): Promise<string[]> =>
    JSON.parse(await stack.adminOk(['info', `--stanza=${stack.stanza}`, '--output=json']))[0].backup.map((b: { label: string }) => b.label);

  it('creates an encrypted stanza, backs up full and incr, and restores each to its data through encrypted WAL', async () => {
    expect(await stack.adminOk(['stanza-create', `--stanza=${stack.stanza}`])).toContain('created');
    await stack.cluster.query(`CREATE TABLE marker AS SELECT g AS id, '${MARKER}' || g AS v FROM generate_series(1, 2000) g`);
    await stack.adminOk(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast']);
    sets.push({ label: (await labels())[0]!, rows: 2000 });
    await stack.cluster.pgbench(['-i', '-s', '1', '-q']);
    await stack.cluster.query(`INSERT INTO marker SELECT g, '${MARKER}' || g FROM generate_series(2001, 3000) g`);
    await stack.adminOk(['backup', `--stanza=${stack.stanza}`, '--type=incr', '--start-fast']);
    sets.push({ label: (await labels())[1]!, rows: 3000 });
    const info = await stack.adminOk(['info', `--stanza=${stack.stanza}`]);
    expect(info).toContain('cipher: aes-256-gcm');
    expect(await stack.adminOk(['verify', `--stanza=${stack.stanza}`])).toContain('status: ok');
    for (const [i, set] of sets.entries()) {
      const r = await restore(`set-${i}`, set.label);
      expect(r.code).toBe(0);
      expect(await restoredRows(r.dir)).toBe(set.rows);
    }
  });

  it('holds no plaintext: the marker is in no file of the repository, every data file is sealed', async () => {
    const repo = path.join(stack.dir, 'repo');
    const files = filesUnder(repo);
    const wal = files.filter((f) => /\/archive\/enc\/15-1\/[0-9A-F]{16}\/[0-9A-F]{24}-[0-9a-f]{64}$/.test(f));
    expect(wal.length).toBeGreaterThan(3);
    const marker = Buffer.from(MARKER);
    for (const f of files) {
      const data = fs.readFileSync(f);
      expect({ file: f, hasMarker: data.includes(marker) }).toEqual({ file: f, hasMarker: false });
      if (!f.includes('/keys/') && data.length > 0) expect({ file: f, sealed: data.subarray(0, 8).toString('latin1') }).toEqual({ file: f, sealed: 'ORDSAEAD' });
    }
    // The key file holds wrapped keys only.
    expect(files.some((f) => f.endsWith('/keys/enc/keyring.info'))).toBe(true);
  });

  it('key rotation: new data uses the new passphrase; the old one opens nothing written after the rotation; the new one reads all', async () => {
    const list1 = await stack.adminOk(['key', 'list', `--stanza=${stack.stanza}`]);
    expect(list1).toContain('passphrase versions: 1 ');
    // The new passphrase travels only in the environment.
    const missing = await stack.admin(['key', 'rotate', `--stanza=${stack.stanza}`]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('repo1-cipher-pass-new');
    const rotated = await stack.admin(['key', 'rotate', `--stanza=${stack.stanza}`], { env: { OPENRDS_REPO1_CIPHER_PASS_NEW: PASS2 } });
    expect(rotated.code).toBe(0);
    expect(rotated.stdout).toContain('passphrase version 2 added');

    await stack.cluster.query(`INSERT INTO marker SELECT g, '${MARKER}' || g FROM generate_series(3001, 3500) g`);
    // An incr of the old full gets a key of its own, made for version 2 only.
    await stack.adminOk(['backup', `--stanza=${stack.stanza}`, '--type=incr', '--start-fast']);
    sets.push({ label: (await labels())[2]!, rows: 3500 });
    const list2 = JSON.parse(await stack.adminOk(['key', 'list', `--stanza=${stack.stanza}`, '--output=json']));
    expect(list2.keys).toEqual(expect.arrayContaining([
      expect.objectContaining({ id: `backup-${sets[2]!.label}`, version: 2, openedBy: [2] }),
      expect.objectContaining({ id: `backup-${sets[0]!.label}`, version: 1, openedBy: [1, 2] }),
    ]));

    // The repo-server restarted with the old passphrase: it opens nothing written since the
    // rotation (the info files were re-sealed with the new metadata key, the new backup has a
    // version-2 key), and says so.
    await restartServer(PASS1);
    for (const label of [sets[2]!.label, sets[0]!.label]) {
      const denied = await restore(`old-pass-${label}`, label);
      expect(denied.code).toBe(107);
      expect(denied.stderr).toMatch(/was made for passphrase version 2; repo1-cipher-pass opens version 1/);
    }
    const backupDenied = await stack.admin(['backup', `--stanza=${stack.stanza}`, '--type=incr', '--start-fast']);
    expect(backupDenied.code).toBe(107);
    expect(backupDenied.stderr).toMatch(/passphrase version 2/);

    // With the new passphrase every set restores.
    await restartServer(PASS2);
    for (const i of [0, 1, 2]) {
      const r = await restore(`new-pass-set${i}`, sets[i]!.label);
      expect(r.code).toBe(0);
      expect(await restoredRows(r.dir)).toBe(sets[i]!.rows);
    }

    // A passphrase that opens nothing is a clear error, never garbage.
    await restartServer('not the passphrase at all');
    const wrong = await stack.admin(['info', `--stanza=${stack.stanza}`]);
    expect(`${wrong.stdout}${wrong.stderr}`).toContain("repo1-cipher-pass does not open the key file of stanza 'enc'");
    await restartServer(PASS2);
  });

  it('a flipped byte in an encrypted backup file fails authentication: restore says which file, verify reports it', async () => {
    const set = sets[2]!.label;
    const dir = path.join(stack.dir, 'repo', 'backup', stack.stanza, set, 'pg_data', 'base');
    const victim = filesUnder(dir).map((f) => ({ f, size: fs.statSync(f).size })).sort((a, b) => b.size - a.size)[0]!.f;
    const data = fs.readFileSync(victim);
    data[Math.floor(data.length / 2)]! ^= 0x01;
    fs.writeFileSync(victim, data);
    const r = await restore('flipped', set);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/failed authentication/);
    expect(r.stderr).toContain(path.basename(victim));
    const v = await stack.admin(['verify', `--stanza=${stack.stanza}`, `--set=${set}`]);
    expect(v.code).toBe(106);
    expect(v.stdout).toMatch(/failed authentication/);
  });
});

// Two repositories on one repo-server (repo1 and repo2, each encrypted with its own passphrase):
// stanza-create makes the stanza in both, every WAL file goes to both (the agent seals it for
// repo1, the repo-server re-seals it for repo2), a backup goes to the repo --repo names, info
// shows both, restore finds a set in whichever repo has it. With repo2 unavailable a push fails
// (PostgreSQL retries) while repo1 keeps what it stored; once repo2 is back the retry fills it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PgCluster } from './harness/cluster';
import { Stack } from './stack';

jest.setTimeout(900_000);

describe('two repositories', () => {
  let stack: Stack;
  let repo1: string;
  let repo2: string;
  const restored: PgCluster[] = [];

  beforeAll(async () => {
    stack = await Stack.create({ version: 15, stanza: 'multi', globalOptions: {
      'repo1-cipher-type': 'aes-256-gcm', 'repo2-cipher-type': 'aes-256-gcm', 'repo2-path': '/placeholder',
    } });
    repo1 = path.join(stack.dir, 'repo');
    repo2 = path.join(stack.dir, 'repo2');
    fs.mkdirSync(repo2);
    fs.writeFileSync(stack.conf, fs.readFileSync(stack.conf, 'utf8').replace('repo2-path=/placeholder', `repo2-path=${repo2}`));
    stack.serverEnv = { OPENRDS_REPO1_CIPHER_PASS: 'passphrase of the first repo', OPENRDS_REPO2_CIPHER_PASS: 'another passphrase, repo two' };
    await stack.start();
  });
  afterAll(async () => {
    for (const c of restored) await c.destroy().catch(() => undefined);
    await stack?.destroy();
  });

  const walFiles = (repo: string): string[] => {
    const dir = path.join(repo, 'archive', stack.stanza, '15-1');
    return fs.existsSync(dir) ? (fs.readdirSync(dir, { recursive: true }) as string[]).map((n) => path.basename(n)) : [];
  };
  const restoreRows = async (name: string, args: string[]): Promise<{ rows: number; stderr: string }> => {
    const dir = stack.restoreDir(name);
    const r = await stack.admin(['restore', `--stanza=${stack.stanza}`, `--pg1-path=${dir}`, '--type=immediate', '--target-action=promote', '--archive-mode=off', ...args]);
    if (r.code !== 0) throw new Error(`restore exited ${r.code}: ${r.stderr}`);
    const c = await PgCluster.fromExistingDataDir(dir, { version: 15 });
    restored.push(c);
    await c.start();
    await c.waitPromoted();
    return { rows: Number((await c.query('SELECT count(*) AS n FROM t'))[0].n), stderr: r.stderr };
  };

  it('creates the stanza in both, archives every segment to both, backs up to each, and info shows both', async () => {
    const created = await stack.adminOk(['stanza-create', `--stanza=${stack.stanza}`]);
    expect(created).toContain(`stanza '${stack.stanza}' created in repo1`);
    expect(created).toContain(`stanza '${stack.stanza}' created in repo2`);
    await stack.adminOk(['check', `--stanza=${stack.stanza}`]);
    await stack.cluster.query('CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g');
    await stack.adminOk(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast']);
    await stack.cluster.query('INSERT INTO t SELECT g FROM generate_series(1001, 1500) g');
    await stack.adminOk(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast', '--repo=2']);
    // Every segment repo1 has, repo2 has too (and the reverse), each sealed for its repository.
    const segs = (repo: string): string[] => walFiles(repo).filter((n) => /^[0-9A-F]{24}-/.test(n)).sort();
    expect(segs(repo1).length).toBeGreaterThan(2);
    expect(segs(repo2)).toEqual(segs(repo1));
    const one = segs(repo1)[0]!;
    const sealed = (repo: string): Buffer => fs.readFileSync((fs.readdirSync(path.join(repo, 'archive', stack.stanza, '15-1'), { recursive: true }) as string[])
      .map((n) => path.join(repo, 'archive', stack.stanza, '15-1', n)).find((p) => p.endsWith(one))!);
    expect(sealed(repo1).subarray(0, 8).toString('latin1')).toBe('ORDSAEAD');
    expect(sealed(repo2).subarray(0, 8).toString('latin1')).toBe('ORDSAEAD');
    expect(sealed(repo1).equals(sealed(repo2))).toBe(false);

    const info = JSON.parse(await stack.adminOk(['info', `--stanza=${stack.stanza}`, '--output=json']))[0];
    expect(info.backup.map((b: { database: { 'repo-key': number } }) => b.database['repo-key'])).toEqual([1, 2]);
    expect(info.repo.map((r: { key: number; cipher: string }) => [r.key, r.cipher])).toEqual([[1, 'aes-256-gcm'], [2, 'aes-256-gcm']]);
    const text = await stack.adminOk(['info', `--stanza=${stack.stanza}`]);
    expect(text).toMatch(/repo1: wal archive min\/max/);
    expect(text).toMatch(/repo2: wal archive min\/max/);
    expect(text).toMatch(/repo2: backup set size/);
    const verify = await stack.admin(['verify', `--stanza=${stack.stanza}`]);
    expect(verify.code).toBe(0);
    expect(verify.stdout).toContain('repo1:');
    expect(verify.stdout).toContain('repo2:');
  });

  it('restores from the repo that has the set (--repo, or searched in order)', async () => {
    const backups = JSON.parse(await stack.adminOk(['info', `--stanza=${stack.stanza}`, '--output=json']))[0].backup as { label: string }[];
    expect((await restoreRows('from-repo1', ['--repo=1'])).rows).toBe(1000);
    // repo1 does not have the second set: the search finds it in repo2.
    const found = await restoreRows('searched', [`--set=${backups[1]!.label}`]);
    expect(found.rows).toBe(1500);
    expect(found.stderr).toContain('restore from repo2');
    const bad = await stack.admin(['backup', `--stanza=${stack.stanza}`, '--repo=3']);
    expect(bad.code).toBe(31);
    expect(bad.stderr).toContain('repo3 is not configured on the repo-server');
  });

  it('a push fails while repo2 is unavailable, repo1 keeps the segment, and the retry fills repo2', async () => {
    // repo2 becomes unusable: its directory is replaced by a file.
    fs.renameSync(repo2, `${repo2}.away`);
    fs.writeFileSync(repo2, 'not a directory');
    try {
      await stack.cluster.query('INSERT INTO t SELECT g FROM generate_series(1501, 1600) g');
      const [{ f }] = await stack.cluster.query('SELECT pg_walfile_name(pg_switch_wal()) AS f');
      const walPath = path.join(stack.cluster.dataDir, 'pg_wal', f);
      const r = await stack.agentCommand(['archive-push', walPath]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(new RegExp(`WAL file '${f}' was stored in repo1 but not in repo2`));
      expect(walFiles(repo1).some((n) => n.startsWith(`${f}-`))).toBe(true);
      // repo2 is back: the retry stores it there (repo1 answers it as a duplicate).
      fs.rmSync(repo2);
      fs.renameSync(`${repo2}.away`, repo2);
      const retry = await stack.agentCommand(['archive-push', walPath]);
      expect(retry.code).toBe(0);
      expect(walFiles(repo2).some((n) => n.startsWith(`${f}-`))).toBe(true);
    } finally {
      if (fs.existsSync(`${repo2}.away`)) { fs.rmSync(repo2, { force: true }); fs.renameSync(`${repo2}.away`, repo2); }
    }
    // PostgreSQL's own archiving goes on into both.
    await stack.adminOk(['check', `--stanza=${stack.stanza}`]);
  });
});

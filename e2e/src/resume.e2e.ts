// An interrupted full backup (agent or repo-server killed with SIGKILL mid-copy) is resumed by the
// next full backup: the stored files are re-checked by checksum and kept, a damaged one is removed
// with its reason, and the result verifies and restores to exactly the data. --no-resume starts over.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PgCluster } from './harness/cluster';
import { Stack } from './stack';

jest.setTimeout(900_000);

describe('backup resume', () => {
  let stack: Stack;
  const backupDir = (): string => path.join(stack.dir, 'repo', 'backup', stack.stanza);

  beforeAll(async () => {
    // A record is saved after each file once 1 MiB has been copied (1% of this cluster is more: ~1.2 MB).
    stack = await Stack.create({ version: 15, stanza: 'res', globalOptions: { 'manifest-save-threshold': '1048576', 'repo1-retention-full': '9' } });
    await stack.start();
    await stack.adminOk(['stanza-create', `--stanza=${stack.stanza}`]);
    // Ten tables of ~12 MB of poorly compressible rows: many files, each copied in a fraction of a second.
    for (let i = 0; i < 10; i++) {
      await stack.cluster.query(`CREATE TABLE t${i} AS SELECT g, md5(g::text) || md5((g * ${i + 7})::text) || md5(random()::text) AS v FROM generate_series(1, 90000) g`);
    }
    // Settled files (hint bits set, pages flushed), so that the cluster does not change them between backups.
    await stack.cluster.query('VACUUM FREEZE');
    await stack.cluster.query('CHECKPOINT');
  });
  afterAll(async () => { await stack?.destroy(); });

  /** Starts a full backup and returns once its resumable record is in the repo (with the label). */
  async function backupUntilRecorded(): Promise<{ label: string; result: ReturnType<Stack['admin']> }> {
    const result = stack.admin(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast']);
    const until = Date.now() + 120_000;
    for (;;) {
      // Only the backup in progress has a record: a completed one has removed it.
      const label = fs.existsSync(backupDir()) ? fs.readdirSync(backupDir()).find((n) => fs.existsSync(path.join(backupDir(), n, 'backup.partial.copy'))) : undefined;
      if (label) {
        const rec = JSON.parse(fs.readFileSync(path.join(backupDir(), label, 'backup.partial.copy'), 'utf8'));
        if (rec.files.length >= 3) return { label, result };
      }
      if (Date.now() > until) throw new Error(`no resumable record appeared: ${JSON.stringify(await result)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  const latestLabels = async (): Promise<string[]> =>
    JSON.parse(await stack.adminOk(['info', `--stanza=${stack.stanza}`, '--output=json']))[0].backup.map((b: { label: string }) => b.label);

  async function restoredDigest(label: string, name: string): Promise<string> {
    const dir = stack.restoreDir(name);
    await stack.adminOk(['restore', `--stanza=${stack.stanza}`, `--set=${label}`, `--pg1-path=${dir}`, '--type=immediate', '--target-action=promote', '--archive-mode=off']);
    const c = await PgCluster.fromExistingDataDir(dir, { version: 15 });
    try {
      await c.start();
      await c.waitPromoted();
      return await c.dataDigest();
    } finally {
      await c.destroy();
    }
  }

  it('resumes after the agent is killed, re-checking kept files and replacing a damaged one', async () => {
    const { label, result } = await backupUntilRecorded();
    await stack.agent!.stop('SIGKILL');
    const failed = await result;
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toContain(`backup ${label} is kept to be resumed by the next full backup`);
    expect(await latestLabels()).toEqual([]);

    // Damage one stored file: the resume must notice and copy it again.
    const rec = JSON.parse(fs.readFileSync(path.join(backupDir(), label, 'backup.partial'), 'utf8'));
    const victim = rec.files.find((f: { size: number }) => f.size > 100_000).name as string;
    const victimKey = path.join(backupDir(), label, `${victim}.zst`);
    const bytes = fs.readFileSync(victimKey);
    bytes[Math.floor(bytes.length / 2)] ^= 0x55;
    fs.writeFileSync(victimKey, bytes);

    await stack.startAgent();
    const digest = await stack.cluster.dataDigest();
    const resumed = await stack.admin(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast']);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain(`full ${label} resuming the interrupted backup`);
    expect(resumed.stderr).toMatch(/resume backup \S+: [1-9]\d* file\(s\) kept after re-checking their checksums/);
    expect(resumed.stderr).toContain(`resumed backup file '${victim}.zst' removed:`);
    expect(await latestLabels()).toEqual([label]);
    expect(fs.existsSync(path.join(backupDir(), label, 'backup.partial'))).toBe(false);
    expect(await stack.adminOk(['verify', `--stanza=${stack.stanza}`, `--set=${label}`])).toContain('status: ok');
    expect(await restoredDigest(label, 'after-agent-kill')).toBe(digest);
  });

  it('resumes after the repo-server is killed', async () => {
    await stack.cluster.query('UPDATE t3 SET v = upper(v) WHERE g % 7 = 0');
    const before = await latestLabels();
    const { label, result } = await backupUntilRecorded();
    expect(before).not.toContain(label);
    await stack.server!.stop('SIGKILL');
    expect((await result).code).not.toBe(0);
    await stack.startServer();
    const digest = await stack.cluster.dataDigest();
    const resumed = await stack.admin(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast']);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain(`full ${label} resuming the interrupted backup`);
    expect(await latestLabels()).toEqual([...before, label]);
    expect(await stack.adminOk(['verify', `--stanza=${stack.stanza}`])).toContain('status: ok');
    expect(await restoredDigest(label, 'after-server-kill')).toBe(digest);
  });

  it('starts over with --no-resume, removing the interrupted backup', async () => {
    const before = await latestLabels();
    const { label, result } = await backupUntilRecorded();
    expect(before).not.toContain(label);
    await stack.agent!.stop('SIGKILL');
    expect((await result).code).not.toBe(0);
    await stack.startAgent();
    // A new label needs a new second.
    await new Promise((r) => setTimeout(r, 1100));
    const fresh = await stack.admin(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast', '--no-resume']);
    expect(fresh.code).toBe(0);
    expect(fresh.stderr).toContain(`backup ${label} was interrupted and is removed: resume is disabled (--no-resume)`);
    expect(fs.existsSync(path.join(backupDir(), label))).toBe(false);
    const after = await latestLabels();
    expect(after).toHaveLength(before.length + 1);
    expect(after).not.toContain(label);
  });
});

// Bounded repository size: retention expires old full backups and the WAL only they needed, after
// every backup and on its own; one backup or expire per stanza at a time.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Stack } from './stack';

jest.setTimeout(600_000);

describe('retention and expire', () => {
  let stack: Stack;
  const labels: string[] = [];
  const walStarts: string[] = [];

  beforeAll(async () => {
    stack = await Stack.create({ version: 15, stanza: 'exp' });
    await stack.start();
    await stack.adminOk(['stanza-create', `--stanza=${stack.stanza}`]);
    await stack.cluster.pgbench(['-i', '-s', '3', '-q']);
  });
  afterAll(async () => { await stack?.destroy(); });

  const archived = (): string[] => {
    const base = path.join(stack.dir, 'repo', 'archive', stack.stanza, '15-1');
    return fs.readdirSync(base).filter((d) => /^[0-9A-F]{16}$/.test(d))
      .flatMap((d) => fs.readdirSync(path.join(base, d)).map((n) => n.slice(0, 24))).sort();
  };
  const backups = async (): Promise<{ label: string; archive: { start: string } }[]> =>
    JSON.parse(await stack.adminOk(['info', `--stanza=${stack.stanza}`, '--output=json']))[0].backup;

  it('keeps the newest repo1-retention-full fulls after each backup, and the WAL they need', async () => {
    for (let i = 0; i < 3; i++) {
      await stack.cluster.pgbench(['-t', '200', '-n']);
      const out = await stack.adminOk(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast', '--repo1-retention-full=2']);
      expect(out).toMatch(/full backup \d{8}-\d{6}F complete/);
      const list = await backups();
      labels.push(list[list.length - 1]!.label);
      walStarts.push(list[list.length - 1]!.archive.start);
    }
    expect(labels[0]! < labels[1]! && labels[1]! < labels[2]!).toBe(true);
    expect((await backups()).map((b) => b.label)).toEqual([labels[1], labels[2]]);
    expect(fs.existsSync(path.join(stack.dir, 'repo', 'backup', stack.stanza, labels[0]!))).toBe(false);
    const wal = archived();
    expect(wal.filter((w) => w < walStarts[1]!)).toEqual([]);
    expect(wal).toContain(walStarts[1]);
    expect(wal).toContain(walStarts[2]);
  });

  it('shows with --dry-run what --set would expire, then expires it; never the newest full', async () => {
    const walBefore = archived();
    const dry = await stack.adminOk(['expire', `--stanza=${stack.stanza}`, `--set=${labels[1]}`, '--dry-run', '--repo1-retention-full=2']);
    expect(dry).toContain(`[dry-run] expired 1 backup(s) (${labels[1]})`);
    expect((await backups()).map((b) => b.label)).toEqual([labels[1], labels[2]]);
    expect(archived()).toEqual(walBefore);

    const newest = await stack.admin(['expire', `--stanza=${stack.stanza}`, `--set=${labels[2]}`]);
    expect(newest.code).toBe(99);
    expect(newest.stderr).toContain(`backup set '${labels[2]}' is the newest full backup and cannot be expired`);

    await stack.adminOk(['expire', `--stanza=${stack.stanza}`, `--set=${labels[1]}`, '--repo1-retention-full=2']);
    expect((await backups()).map((b) => b.label)).toEqual([labels[2]]);
    expect(archived().filter((w) => w < walStarts[2]!)).toEqual([]);
    await stack.adminOk(['check', `--stanza=${stack.stanza}`]);
  });

  it('refuses an expire while a backup of the stanza runs, and the backup completes', async () => {
    const { backup: first, during: second } = await stack.duringBackup(() => stack.admin(['expire', `--stanza=${stack.stanza}`]));
    expect(first.code).toBe(0);
    expect(second.code).toBe(50);
    expect(second.stderr).toContain(`unable to expire stanza '${stack.stanza}': a backup is running`);
  });

  it('fences a stopped stanza: backups and WAL pushes are refused until start', async () => {
    expect(await stack.adminOk(['stop', `--stanza=${stack.stanza}`])).toContain(`stopped stanza '${stack.stanza}'`);
    const r = await stack.admin(['backup', `--stanza=${stack.stanza}`, '--type=full']);
    expect(r.code).toBe(62);
    expect(r.stderr).toContain(`stop file exists for stanza '${stack.stanza}'`);
    expect(r.stderr).toContain(`HINT: run 'openrds-admin start --stanza=${stack.stanza}'`);
    await stack.cluster.query('CREATE TABLE during_stop AS SELECT 1 AS x');
    const [{ f }] = await stack.cluster.query('SELECT pg_walfile_name(pg_switch_wal()) AS f');
    const push = await stack.agentCommand(['archive-push', path.join(stack.cluster.dataDir, 'pg_wal', f)]);
    expect(push.code).toBe(62);
    expect(await stack.adminOk(['info', `--stanza=${stack.stanza}`])).toContain('full backup');
    expect(await stack.adminOk(['start', `--stanza=${stack.stanza}`])).toContain(`started stanza '${stack.stanza}'`);
    // PostgreSQL retried archive_command meanwhile; the backlog drains once started.
    await stack.adminOk(['check', `--stanza=${stack.stanza}`]);
    expect(archived()).toContain(f);
  });

  it('stop --force ends a running full backup, which is kept only to be resumed', async () => {
    const before = (await backups()).map((b) => b.label);
    const sets = fs.readdirSync(path.join(stack.dir, 'repo', 'backup', stack.stanza)).sort();
    const { backup: r, during: stopped } = await stack.duringBackup(() => stack.adminOk(['stop', `--stanza=${stack.stanza}`, '--force']));
    expect(stopped).toContain('ended 1 running operation(s)');
    expect(r.code).toBe(62);
    expect(r.stderr).toContain("backup ended: stopped by 'openrds-admin stop --force'");
    expect((await backups()).map((b) => b.label)).toEqual(before);
    // Nothing else changed: at most the interrupted set, with its resumable record, not a backup.
    const after = fs.readdirSync(path.join(stack.dir, 'repo', 'backup', stack.stanza)).sort();
    const extra = after.filter((n) => !sets.includes(n));
    expect(extra.length).toBeLessThanOrEqual(1);
    for (const n of extra) expect(fs.existsSync(path.join(stack.dir, 'repo', 'backup', stack.stanza, n, 'backup.partial'))).toBe(true);
    await stack.adminOk(['start', `--stanza=${stack.stanza}`]);
    await stack.adminOk(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast']);
    // The next full backup resumed (or removed) it: every set is a listed backup again.
    const listed = (await backups()).map((b) => b.label);
    expect(fs.readdirSync(path.join(stack.dir, 'repo', 'backup', stack.stanza)).filter((n) => /^\d{8}-\d{6}F/.test(n)).sort()).toEqual([...listed].sort());
  });
});

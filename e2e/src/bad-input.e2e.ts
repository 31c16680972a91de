// Bad input gets a clear error with a stable code and a hint, and loses nothing.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PgCluster } from './harness/cluster';
import { osUser, runCommand, spawnService } from './harness/processes';
import { Stack, installedBin } from './stack';

jest.setTimeout(600_000);

/** Every file under a directory, relative, sorted. */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path.join(d, e.name), r);
      else out.push(r);
    }
  };
  if (fs.existsSync(dir)) walk(dir, '');
  return out.sort();
}

describe('bad input: clear errors, nothing lost', () => {
  let stack: Stack;
  let other: PgCluster | undefined;
  const pg = osUser('postgres');
  const archiveDir = (): string => path.join(stack.dir, 'repo', 'archive', stack.stanza, '15-1');

  beforeAll(async () => {
    stack = await Stack.create({ version: 15 });
    await stack.start();
    await stack.adminOk(['stanza-create', `--stanza=${stack.stanza}`]);
    await stack.adminOk(['check', `--stanza=${stack.stanza}`]);
  });

  afterAll(async () => {
    await other?.destroy().catch(() => undefined);
    await stack?.destroy();
  });

  /** A copy of an archived segment fetched with archive-get, owned by postgres. */
  async function fetchedSegment(name: string): Promise<string> {
    const dest = path.join(stack.dir, 'run', `fetched-${name}-${Date.now()}`);
    const r = await stack.agentCommand(['archive-get', name, dest]);
    expect(r.code).toBe(0);
    return dest;
  }

  function archivedSegments(): string[] {
    return tree(archiveDir()).filter((f) => /\/[0-9A-F]{24}-[0-9a-f]{64}\.zst$/.test(f));
  }

  it('refuses an unknown stanza with a hint', async () => {
    const r = await stack.admin(['backup', '--stanza=nope', '--type=full']);
    expect(r.code).toBe(100);
    expect(r.stderr).toContain("stanza 'nope' does not exist in the repo");
    expect(r.stderr).toContain('HINT:');
  });

  it('refuses to run the agent as another OS user than the owner of PGDATA', async () => {
    const r = await runCommand(installedBin('openrds-agent'), ['serve', `--stanza=${stack.stanza}`, `--config=${stack.conf}`], { timeoutMs: 30_000 });
    expect(r.code).toBe(31);
    expect(r.stderr).toContain(`openrds-agent must run as the owner of '${stack.cluster.dataDir}'`);
    expect(r.stderr).toContain("HINT: run it as the PostgreSQL OS user, e.g. 'runuser -u postgres --");
  });

  it('archive-get: 0 when found, 1 when not found', async () => {
    const seg = archivedSegments()[0]!.split('/').pop()!.slice(0, 24);
    const dest = await fetchedSegment(seg);
    expect(fs.statSync(dest).size).toBe(16 * 1024 * 1024);
    const missing = await stack.agentCommand(['archive-get', '0000000100000000000000EE', path.join(stack.dir, 'run', 'nothing')]);
    expect(missing.code).toBe(1);
    expect(fs.existsSync(path.join(stack.dir, 'run', 'nothing'))).toBe(false);
  });

  it('accepts the same WAL pushed twice with identical content, with a warning', async () => {
    const seg = archivedSegments()[0]!.split('/').pop()!.slice(0, 24);
    const copy = path.join(path.dirname(await fetchedSegment(seg)), seg);
    fs.renameSync(await fetchedSegment(seg), copy);
    const before = archivedSegments();
    const r = await stack.agentCommand(['archive-push', copy]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('already exists in the archive with the same checksum');
    expect(archivedSegments()).toEqual(before);
  });

  it('stores WAL pushed with lz4, gz or none as such, and gets it back byte for byte', async () => {
    const seg = archivedSegments()[0]!.split('/').pop()!.slice(0, 24);
    const original = fs.readFileSync(await fetchedSegment(seg));
    for (const [type, name] of [['lz4', '0000000100000000000000D1'], ['gz', '0000000100000000000000D2'], ['none', '0000000100000000000000D3']] as const) {
      const copy = path.join(stack.dir, 'run', name);
      fs.writeFileSync(copy, original);
      fs.chownSync(copy, pg.uid, pg.gid);
      const r = await stack.agentCommand(['archive-push', copy, `--compress-type=${type}`]);
      expect(r.code).toBe(0);
      const stored = tree(archiveDir()).filter((f) => f.includes(`/${name}-`));
      expect(stored).toEqual([expect.stringMatching(new RegExp(`/${name}-[0-9a-f]{64}${type === 'none' ? '' : `\\.${type}`}$`))]);
      expect(fs.readFileSync(await fetchedSegment(name)).equals(original)).toBe(true);
    }
    const v = await stack.admin(['verify', `--stanza=${stack.stanza}`]);
    // Every file of the archive reads back to the content its name says (the pushed names leave gaps: fine).
    expect(v.stdout).toMatch(/archive 15-1: \d+ files, [^,]+, 0 bad,/);
  });

  it('refuses the same WAL name with different content and overwrites nothing', async () => {
    const seg = archivedSegments()[0]!.split('/').pop()!.slice(0, 24);
    const copy = path.join(stack.dir, 'run', seg);
    fs.renameSync(await fetchedSegment(seg), copy);
    const fd = fs.openSync(copy, 'r+');
    fs.writeSync(fd, Buffer.from('different bytes'), 0, 15, 8 * 1024 * 1024);
    fs.closeSync(fd);
    const before = archivedSegments();
    const r = await stack.agentCommand(['archive-push', copy]);
    expect(r.code).toBe(45);
    expect(r.stderr).toContain(`WAL file '${seg}' already exists in the archive of stanza '${stack.stanza}' with a different checksum`);
    expect(archivedSegments()).toEqual(before);
  });

  it('refuses WAL from another cluster (system id) and stores nothing', async () => {
    other = await PgCluster.create({ version: 15, dataChecksums: true, archiveCommand: 'true' });
    await other.start();
    await other.query('SELECT pg_switch_wal()');
    const [{ f }] = await other.query('SELECT pg_walfile_name(pg_current_wal_lsn()) AS f');
    const src = path.join(other.dataDir, 'pg_wal', f);
    const foreign = path.join(stack.dir, 'run', '0000000100000000000000E0');
    fs.copyFileSync(src, foreign);
    fs.chownSync(foreign, pg.uid, pg.gid);
    const before = tree(archiveDir());
    const r = await stack.agentCommand(['archive-push', foreign]);
    expect(r.code).toBe(44);
    expect(r.stderr).toMatch(/WAL file '0000000100000000000000E0' is from PostgreSQL 15 with system-id \d+, but stanza/);
    expect(r.stderr).toContain('HINT:');
    expect(tree(archiveDir())).toEqual(before);
  });

  it('refuses stanza-create and backup when the agent of the stanza serves another cluster', async () => {
    // Another cluster's agent claims the stanza (a copy-pasted config, say): the repo-server
    // reads its pg_control and refuses, leaving the stanza as it was.
    const intruder = await PgCluster.create({ version: 15, dataChecksums: true, archiveCommand: 'true' });
    await intruder.start();
    const conf = path.join(stack.dir, 'intruder.conf');
    fs.writeFileSync(conf, fs.readFileSync(stack.conf, 'utf8')
      .replace(`pg1-path=${stack.cluster.dataDir}`, `pg1-path=${intruder.dataDir}`)
      .replace(`pg1-port=${stack.cluster.port}`, `pg1-port=${intruder.port}`)
      .replace(`pg1-socket-path=${stack.cluster.socketDir}`, `pg1-socket-path=${intruder.socketDir}`)
      .replace('agent.sock', 'intruder.sock'));
    const agent = await spawnService({
      cmd: installedBin('openrds-agent'), args: ['serve', `--stanza=${stack.stanza}`, `--config=${conf}`], uid: pg.uid, gid: pg.gid,
      logFile: path.join(stack.dir, 'intruder-agent.log'),
      readyWhen: async () => (await stack.admin(['agents'])).stdout.includes(intruder.dataDir), timeoutMs: 20_000,
    });
    try {
      const info = fs.readFileSync(path.join(stack.dir, 'repo', 'archive', stack.stanza, 'archive.info'));
      const create = await stack.admin(['stanza-create', `--stanza=${stack.stanza}`]);
      expect(create.code).toBe(51);
      expect(create.stderr).toMatch(/the cluster is PostgreSQL 15 with system-id \d+, but stanza 'e2e' is PostgreSQL 15 with system-id \d+/);
      expect(create.stderr).toContain('HINT: is this the correct stanza?');
      const backup = await stack.admin(['backup', `--stanza=${stack.stanza}`, '--type=full']);
      expect(backup.code).toBe(51);
      expect(fs.readFileSync(path.join(stack.dir, 'repo', 'archive', stack.stanza, 'archive.info')).equals(info)).toBe(true);
    } finally {
      await agent.stop();
      await intruder.destroy();
    }
    // With the intruder gone, the real agent serves the stanza again.
    await stack.adminOk(['check', `--stanza=${stack.stanza}`]);
  });

  it('fails archive-push with non-zero while the repo-server is down, then archives when it is back', async () => {
    await stack.server!.stop('SIGTERM');
    await stack.cluster.query('CREATE TABLE while_down AS SELECT 1 AS x');
    const [{ f }] = await stack.cluster.query('SELECT pg_walfile_name(pg_switch_wal()) AS f');
    const r = await stack.agentCommand(['archive-push', path.join(stack.cluster.dataDir, 'pg_wal', f)]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/repo-server|unavailable|UNAVAILABLE|connect/i);
    expect(tree(archiveDir()).filter((n) => n.includes(f))).toEqual([]);
    expect(tree(archiveDir()).filter((n) => n.includes('.tmp'))).toEqual([]);
    await stack.startServer();
    // PostgreSQL keeps retrying archive_command; check waits until the backlog is archived.
    await stack.adminOk(['check', `--stanza=${stack.stanza}`]);
    expect(tree(archiveDir()).some((n) => n.includes(`/${f}-`))).toBe(true);
  });

  it('refuses to restore into a non-empty directory and leaves it as it was', async () => {
    await stack.adminOk(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast']);
    const dir = stack.restoreDir('not-empty');
    fs.mkdirSync(dir, { mode: 0o700 });
    fs.writeFileSync(path.join(dir, 'precious.txt'), 'keep me');
    fs.chownSync(dir, pg.uid, pg.gid);
    const r = await stack.admin(['restore', `--stanza=${stack.stanza}`, `--pg1-path=${dir}`]);
    expect(r.code).toBe(40);
    expect(r.stderr).toContain(`unable to restore to path '${dir}' because it contains files`);
    expect(fs.readdirSync(dir)).toEqual(['precious.txt']);
    expect(fs.readFileSync(path.join(dir, 'precious.txt'), 'utf8')).toBe('keep me');
  });

  it('fails a backup fast when archive_command is broken, leaving the earlier backups as they were', async () => {
    const before = JSON.parse(await stack.adminOk(['info', `--stanza=${stack.stanza}`, '--output=json']))[0].backup;
    const backupDir = path.join(stack.dir, 'repo', 'backup', stack.stanza);
    const setsBefore = fs.readdirSync(backupDir).sort();
    await stack.cluster.query("ALTER SYSTEM SET archive_command = 'false'");
    await stack.cluster.query('SELECT pg_reload_conf()');
    try {
      const r = await stack.admin(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast', '--archive-timeout=3']);
      expect(r.code).toBe(82);
      expect(r.stderr).toMatch(/WAL segment [0-9A-F]{24} was not archived before the 3s timeout/);
      expect(r.stderr).toContain('HINT: check the archive_command');
      // The check runs beside the copy: what was copied may stay as an interrupted set for the next
      // full backup to resume, but no earlier set changed and none was added to the backup list.
      const setsAfter = fs.readdirSync(backupDir).sort();
      expect(setsAfter).toEqual(expect.arrayContaining(setsBefore));
      expect(setsAfter.length - setsBefore.length).toBeLessThanOrEqual(1);
      const after = JSON.parse(await stack.adminOk(['info', `--stanza=${stack.stanza}`, '--output=json']))[0].backup;
      expect(after).toEqual(before);
    } finally {
      await stack.cluster.query('ALTER SYSTEM RESET archive_command');
      await stack.cluster.query('SELECT pg_reload_conf()');
    }
    await stack.adminOk(['check', `--stanza=${stack.stanza}`]);
  });

  it('refuses to restore over the running cluster', async () => {
    const r = await stack.admin(['restore', `--stanza=${stack.stanza}`]);
    expect(r.code).toBe(38);
    expect(r.stderr).toContain('unable to restore while PostgreSQL is running');
    const rows = await stack.cluster.query('SELECT 1 AS ok');
    expect(rows[0].ok).toBe(1);
  });

  it('detects a corrupted repo file on restore and names it', async () => {
    const json = JSON.parse(await stack.adminOk(['info', `--stanza=${stack.stanza}`, '--output=json']));
    const label = json[0].backup[json[0].backup.length - 1].label;
    const setDir = path.join(stack.dir, 'repo', 'backup', stack.stanza, label);
    // The largest relation file of the backup: flip one byte in the middle of its repo bytes.
    const files = tree(setDir).filter((f) => f.startsWith('pg_data/base/')).map((f) => ({ f, size: fs.statSync(path.join(setDir, f)).size }));
    files.sort((a, b) => b.size - a.size);
    const victim = files[0]!;
    const fd = fs.openSync(path.join(setDir, victim.f), 'r+');
    const byte = Buffer.alloc(1);
    const at = Math.floor(victim.size / 2);
    fs.readSync(fd, byte, 0, 1, at);
    byte[0] = byte[0]! ^ 0xff;
    fs.writeSync(fd, byte, 0, 1, at);
    fs.closeSync(fd);
    const dir = stack.restoreDir('corrupt');
    const r = await stack.admin(['restore', `--stanza=${stack.stanza}`, `--pg1-path=${dir}`, `--set=${label}`]);
    expect(r.code).toBe(53);
    expect(r.stderr).toContain(victim.f.replace(/^pg_data\//, '').replace(/\.zst$/, ''));
    // pg_control is written last: a failed restore can never be started by mistake.
    expect(fs.existsSync(path.join(dir, 'global', 'pg_control'))).toBe(false);
  });
});

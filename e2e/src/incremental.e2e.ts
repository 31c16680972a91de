// Small nightly backups: full → incr → diff → incr with pgbench writes between; unchanged files
// are referenced, never copied again; every set restores to exactly its data.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checksumOf } from '@openrds/common';
import { PgCluster } from './harness/cluster';
import { Stack } from './stack';

jest.setTimeout(900_000);

describe('differential and incremental backups', () => {
  let stack: Stack;
  const sets: { label: string; type: string; sum: string; dump: string }[] = [];

  beforeAll(async () => {
    stack = await Stack.create({ version: 15, stanza: 'inc' });
    await stack.start();
    await stack.adminOk(['stanza-create', `--stanza=${stack.stanza}`]);
    await stack.cluster.pgbench(['-i', '-s', '3', '-q']);
  });
  afterAll(async () => { await stack?.destroy(); });

  const dumpHash = async (c: PgCluster): Promise<string> => createHash('sha256').update(await c.dumpAll()).digest('hex');
  const dataSum = async (c: PgCluster): Promise<string> =>
    (await c.query("SELECT md5(string_agg(aid || ':' || abalance, ',' ORDER BY aid)) || '/' || (SELECT count(*) FROM pgbench_history) AS s FROM pgbench_accounts"))[0].s;
  /** Starts a restored directory, waits for promotion, and returns its data checksum. */
  const restoredSum = async (dir: string, withDump = false): Promise<string> => {
    const c = await PgCluster.fromExistingDataDir(dir, { version: 15 });
    try {
      await c.start();
      await c.waitPromoted();
      return withDump ? `${await dataSum(c)} ${await dumpHash(c)}` : await dataSum(c);
    } finally {
      await c.destroy();
    }
  };
  const info = async () => JSON.parse(await stack.adminOk(['info', `--stanza=${stack.stanza}`, '--output=json']))[0].backup;

  it('takes full, incr, diff, incr with pgbench writes between, copying only what changed', async () => {
    // With no full yet, an incr becomes a full and says why. The full records sha256 checksums and
    // the later ones blake3 (the default): their manifests hold both, and every check below
    // (verify, restore of each set, delta restore) hashes each file with the type it was recorded with.
    const first = await stack.admin(['backup', `--stanza=${stack.stanza}`, '--type=incr', '--start-fast', '--checksum-type=sha256']);
    expect(first.code).toBe(0);
    expect(first.stderr).toContain('no prior backup exists, incr backup has been changed to full');
    for (const type of ['incr', 'diff', 'incr']) {
      const b = await info();
      sets.push({ label: b[b.length - 1].label, type: b[b.length - 1].type, sum: await dataSum(stack.cluster), dump: await dumpHash(stack.cluster) });
      await stack.cluster.pgbench(['-t', '300', '-n']);
      // The diff runs on two lanes (and two filter workers): the parallel engine must store the same sets.
      await stack.adminOk(['backup', `--stanza=${stack.stanza}`, `--type=${type}`, '--start-fast', ...(type === 'diff' ? ['--process-max=2'] : [])]);
    }
    const b = await info();
    sets.push({ label: b[b.length - 1].label, type: b[b.length - 1].type, sum: await dataSum(stack.cluster), dump: await dumpHash(stack.cluster) });
    expect(sets.map((s) => s.type)).toEqual(['full', 'incr', 'diff', 'incr']);
    const [full, incr1, diff, incr2] = b;
    expect(incr1.prior).toBe(full.label);
    expect(diff.prior).toBe(full.label);
    expect(incr2.prior).toBe(diff.label);
    expect(incr2.label.startsWith(`${full.label}_`)).toBe(true);
    expect(incr2.reference).toEqual(expect.arrayContaining([full.label]));
    // Unchanged files are referenced, changed ones copied whole (pgbench touches most of the
    // accounts table, so the delta is most of the data but a minority of the files).
    for (const x of [incr1, diff, incr2]) {
      expect(x.info.delta).toBeLessThan(x.info.size);
      expect(x.info.repository.delta).toBeLessThan(full.info.repository.delta);
    }
    const incrFiles = fs.readdirSync(path.join(stack.dir, 'repo', 'backup', stack.stanza, incr1.label, 'pg_data', 'base'), { recursive: true });
    const fullFiles = fs.readdirSync(path.join(stack.dir, 'repo', 'backup', stack.stanza, full.label, 'pg_data', 'base'), { recursive: true });
    expect(incrFiles.length).toBeLessThan(fullFiles.length / 2);
    const manifestOf = (label: string) => JSON.parse(fs.readFileSync(path.join(stack.dir, 'repo', 'backup', stack.stanza, label, 'backup.manifest'), 'utf8'));
    const fullManifest = manifestOf(full.label), incrManifest = manifestOf(incr2.label);
    expect(fullManifest.options.checksumType).toBe('sha256');
    expect(fullManifest.files.every((f: { sha256: string }) => /^[0-9a-f]{64}$/.test(f.sha256))).toBe(true);
    const own = incrManifest.files.filter((f: { reference?: string; name: string }) => !f.reference && f.name !== 'pg_data/backup_label');
    expect(own.length).toBeGreaterThan(0);
    expect(own.every((f: { sha256: string }) => /^blake3:[0-9a-f]{64}$/.test(f.sha256))).toBe(true);
    expect(incrManifest.files.some((f: { reference?: string; sha256: string }) => f.reference === full.label && /^[0-9a-f]{64}$/.test(f.sha256))).toBe(true);
    expect(await stack.adminOk(['verify', `--stanza=${stack.stanza}`])).toContain('status: ok');
  });

  it.each([0, 1, 2, 3])('restores set %i of the chain to exactly its data (rows and pg_dumpall)', async (i) => {
    const set = sets[i]!;
    const dir = stack.restoreDir(`set-${i}`);
    // Odd sets restore on three lanes.
    await stack.adminOk(['restore', `--stanza=${stack.stanza}`, `--set=${set.label}`, `--pg1-path=${dir}`,
      '--type=immediate', '--target-action=promote', '--archive-mode=off', `--process-max=${i % 2 ? 3 : 1}`]);
    expect(await restoredSum(dir, true)).toBe(`${set.sum} ${set.dump}`);
  });

  it('delta restore over a damaged copy: keeps what matches, restores the rest, removes extras', async () => {
    const set = sets[3]!;
    const dir = stack.restoreDir('delta');
    const restoreArgs = ['restore', `--stanza=${stack.stanza}`, `--set=${set.label}`, `--pg1-path=${dir}`,
      '--type=immediate', '--target-action=promote', '--archive-mode=off'];
    await stack.adminOk(restoreArgs);
    // Damage the copy: a same-size change, a removed file, an extra file and directory.
    const rel = fs.readdirSync(path.join(dir, 'base'), { recursive: true }).map(String)
      .filter((f) => fs.statSync(path.join(dir, 'base', f)).isFile() && fs.statSync(path.join(dir, 'base', f)).size > 8192);
    const changed = path.join(dir, 'base', rel[0]!), removed = path.join(dir, 'base', rel[1]!);
    const original = fs.readFileSync(changed);
    const fd = fs.openSync(changed, 'r+');
    fs.writeSync(fd, Buffer.alloc(100, 7), 0, 100, 4096);
    fs.closeSync(fd);
    fs.rmSync(removed);
    fs.writeFileSync(path.join(dir, 'extra.txt'), 'not in the backup');
    fs.mkdirSync(path.join(dir, 'extra-dir'));
    const plain = await stack.admin(restoreArgs);
    expect(plain.code).toBe(40);
    const r = await stack.admin([...restoreArgs, '--delta', '--log-level-console=info']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/delta restore: \d+ file\(s\) already matched the backup, [1-9]\d* restored/);
    expect(fs.readFileSync(changed).equals(original)).toBe(true);
    expect(fs.existsSync(removed)).toBe(true);
    expect(fs.existsSync(path.join(dir, 'extra.txt'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'extra-dir'))).toBe(false);
    expect(await restoredSum(dir, true)).toBe(`${set.sum} ${set.dump}`);
    // Not a data directory: refused, nothing removed.
    const other = stack.restoreDir('not-pgdata');
    fs.mkdirSync(other);
    fs.writeFileSync(path.join(other, 'keep.txt'), 'x');
    const refused = await stack.admin(['restore', `--stanza=${stack.stanza}`, `--pg1-path=${other}`, '--delta']);
    expect(refused.code).toBe(40);
    expect(refused.stderr).toContain('does not look like a PostgreSQL data directory');
    expect(fs.readdirSync(other)).toEqual(['keep.txt']);
  });

  it('catches a same-size rewrite within the recorded second once an anomaly switches the backup to checksums', async () => {
    // The race pgBackRest guards against: a file rewritten with the same size and the same mtime
    // as recorded. Size + mtime cannot see it; an older timestamp on another file forces delta mode,
    // and the checksum then finds the rewrite.
    const raced = path.join(stack.cluster.dataDir, 'openrds_race_probe');
    const other = path.join(stack.cluster.dataDir, 'openrds_race_other');
    for (const f of [raced, other]) { fs.writeFileSync(f, 'aaaa'); fs.chownSync(f, fs.statSync(stack.cluster.dataDir).uid, fs.statSync(stack.cluster.dataDir).gid); }
    await stack.adminOk(['backup', `--stanza=${stack.stanza}`, '--type=incr', '--start-fast']);
    const recorded = fs.statSync(raced).mtime;
    fs.writeFileSync(raced, 'bbbb');
    fs.utimesSync(raced, recorded, recorded);
    const older = new Date(fs.statSync(other).mtimeMs - 5000);
    fs.utimesSync(other, older, older);
    const r = await stack.admin(['backup', `--stanza=${stack.stanza}`, '--type=incr', '--start-fast', '--log-level-console=info']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("file 'pg_data/openrds_race_other' has an older timestamp than in the prior backup: enabling delta checksum comparison");
    const b = (await info()).pop();
    const manifest = JSON.parse(fs.readFileSync(path.join(stack.dir, 'repo', 'backup', stack.stanza, b.label, 'backup.manifest'), 'utf8'));
    expect(manifest.backup.delta).toBe(true);
    const entry = manifest.files.find((x: { name: string }) => x.name === 'pg_data/openrds_race_probe');
    expect(entry.reference).toBeUndefined();
    // New backups record BLAKE3 checksums (checksum-type's default).
    expect(entry.sha256).toBe(checksumOf('blake3', Buffer.from('bbbb')));
    expect(manifest.options.checksumType).toBe('blake3');
    fs.rmSync(raced);
    fs.rmSync(other);
  });

  it('switches to checksum comparison when a file has a timestamp in the future, and records it', async () => {
    // PG_VERSION: a file PostgreSQL never rewrites (a checkpoint would reset a relation's mtime).
    const f = 'PG_VERSION';
    const file = path.join(stack.cluster.dataDir, f);
    const future = Date.now() / 1000 + 3600;
    fs.utimesSync(file, future, future);
    const r = await stack.admin(['backup', `--stanza=${stack.stanza}`, '--type=incr', '--start-fast', '--log-level-console=info']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`file 'pg_data/${f}' has a timestamp in the future: enabling delta checksum comparison`);
    const b = (await info()).pop();
    const manifest = JSON.parse(fs.readFileSync(path.join(stack.dir, 'repo', 'backup', stack.stanza, b.label, 'backup.manifest'), 'utf8'));
    expect(manifest.backup.delta).toBe(true);
    // Checksums found the file unchanged: it is referenced, not copied.
    expect(manifest.files.find((x: { name: string }) => x.name === `pg_data/${f}`).reference).toBeDefined();
  });

  it('refuses a second concurrent backup of the stanza while the first completes', async () => {
    const { backup: first, during: second } = await stack.duringBackup(() => stack.admin(['backup', `--stanza=${stack.stanza}`, '--type=incr']));
    expect(second.code).toBe(50);
    expect(second.stderr).toContain(`unable to backup stanza '${stack.stanza}': a backup is running`);
    expect(first.code).toBe(0);
  });

  it('takes a gz backup as a full one when compress-type changes, which verifies and restores to its data', async () => {
    await stack.cluster.pgbench(['-t', '100', '-n']);
    const sum = await dataSum(stack.cluster);
    const r = await stack.admin(['backup', `--stanza=${stack.stanza}`, '--type=incr', '--start-fast', '--compress-type=gz', '--compress-level=6', '--process-max=2']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('compress-type changed from zst to gz since the prior backup: incr backup has been changed to full');
    const b = (await info()).pop();
    expect(b.type).toBe('full');
    const set = path.join(stack.dir, 'repo', 'backup', stack.stanza, b.label);
    expect(fs.existsSync(path.join(set, 'pg_data', 'PG_VERSION.gz'))).toBe(true);
    expect(await stack.adminOk(['verify', `--stanza=${stack.stanza}`, `--set=${b.label}`])).toContain('status: ok');
    const dir = stack.restoreDir('gz');
    await stack.adminOk(['restore', `--stanza=${stack.stanza}`, `--set=${b.label}`, `--pg1-path=${dir}`, '--type=immediate', '--target-action=promote', '--archive-mode=off', '--process-max=2']);
    expect(await restoredSum(dir)).toBe(sum);
  });

  it('takes an lz4 backup the lz4 tool reads, which verifies and restores (also as a delta) to its data', async () => {
    await stack.cluster.pgbench(['-t', '100', '-n']);
    const sum = await dataSum(stack.cluster);
    // With sha256 checksums, which sha256sum (here node's own sha256) can check.
    const r = await stack.admin(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast', '--compress-type=lz4', '--process-max=2', '--checksum-type=sha256']);
    expect(r.code).toBe(0);
    const b = (await info()).pop();
    const set = path.join(stack.dir, 'repo', 'backup', stack.stanza, b.label);
    // A file of several frames, read by the real lz4 tool, has the manifest's content.
    const manifest = JSON.parse(fs.readFileSync(path.join(set, 'backup.manifest'), 'utf8'));
    const large = manifest.files.find((x: { size: number; reference?: string }) => x.size > 3 * 1024 * 1024 && !x.reference);
    const content = execFileSync('lz4', ['-dc', path.join(set, `${large.name}.lz4`)], { maxBuffer: 1024 * 1024 * 1024 });
    expect(createHash('sha256').update(content).digest('hex')).toBe(large.sha256);
    expect(manifest.options.checksumType).toBe('sha256');
    expect(await stack.adminOk(['verify', `--stanza=${stack.stanza}`, `--set=${b.label}`])).toContain('status: ok');
    const dir = stack.restoreDir('lz4');
    const restore = ['restore', `--stanza=${stack.stanza}`, `--set=${b.label}`, `--pg1-path=${dir}`, '--type=immediate', '--target-action=promote', '--archive-mode=off', '--process-max=2'];
    await stack.adminOk(restore);
    // A delta restore over a damaged copy puts the backup's content back.
    fs.appendFileSync(path.join(dir, large.name.replace(/^pg_data\//, '')), 'damage');
    await stack.adminOk([...restore, '--delta']);
    expect(await restoredSum(dir)).toBe(sum);
  });
});

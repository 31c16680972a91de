// Proof that what is stored is intact: verify re-reads every repo file and names what is wrong.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Stack } from './stack';

jest.setTimeout(600_000);

describe('verify', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await Stack.create({ version: 15, stanza: 'ver' });
    await stack.start();
    await stack.adminOk(['stanza-create', `--stanza=${stack.stanza}`]);
    await stack.cluster.pgbench(['-i', '-s', '2', '-q']);
    await stack.adminOk(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast']);
    for (let i = 0; i < 3; i++) {
      await stack.cluster.query(`CREATE TABLE t${i} AS SELECT g FROM generate_series(1, 1000) g`);
      await stack.adminOk(['check', `--stanza=${stack.stanza}`]);
    }
  });
  afterAll(async () => { await stack?.destroy(); });

  it('reports an intact repository with exit 0, in text and JSON', async () => {
    const text = await stack.adminOk(['verify', `--stanza=${stack.stanza}`]);
    expect(text).toContain('status: ok');
    expect(text).toMatch(/archive 15-1: \d+ files, .*, 0 bad, 0 gap\(s\)/);
    const report = JSON.parse(await stack.adminOk(['verify', `--stanza=${stack.stanza}`, '--output=json']));
    expect(report.status).toBe('ok');
    expect(report.backups[0].files).toBeGreaterThan(900);
    expect(report.backups[0].bad).toEqual([]);
    expect(report.archive[0].files).toBeGreaterThanOrEqual(5);
  });

  it('names a damaged backup file, a WAL gap and a damaged info copy, and exits non-zero', async () => {
    const repo = path.join(stack.dir, 'repo');
    const label = fs.readdirSync(path.join(repo, 'backup', stack.stanza)).find((d) => d.endsWith('F'))!;
    const victim = path.join(repo, 'backup', stack.stanza, label, 'pg_data', 'PG_VERSION.zst');
    const bytes = fs.readFileSync(victim);
    bytes[bytes.length - 2] = bytes[bytes.length - 2]! ^ 0xff;
    fs.writeFileSync(victim, bytes);
    const walDir = path.join(repo, 'archive', stack.stanza, '15-1', '0000000100000000');
    const segs = fs.readdirSync(walDir).filter((n) => /^[0-9A-F]{24}-/.test(n)).sort();
    const removed = segs[segs.length - 2]!;
    fs.rmSync(path.join(walDir, removed));
    fs.writeFileSync(path.join(repo, 'archive', stack.stanza, 'archive.info.copy'), '{"damaged": true}');
    // One flipped byte in a WAL file, a deleted backup file, a damaged main manifest (its .copy still loads).
    const walVictim = path.join(walDir, segs[0]!);
    const wal = fs.readFileSync(walVictim);
    wal[Math.floor(wal.length / 2)] ^= 0x01;
    fs.writeFileSync(walVictim, wal);
    fs.rmSync(path.join(repo, 'backup', stack.stanza, label, 'pg_data', 'global', 'pg_filenode.map.zst'));
    const manifestKey = path.join(repo, 'backup', stack.stanza, label, 'backup.manifest');
    const manifest = fs.readFileSync(manifestKey);
    manifest[100] ^= 0x01;
    fs.writeFileSync(manifestKey, manifest);

    const r = await stack.admin(['verify', `--stanza=${stack.stanza}`]);
    expect(r.code).toBe(106);
    expect(r.stdout).toContain('status: error');
    expect(r.stdout).toContain('bad: pg_data/PG_VERSION:');
    expect(r.stdout).toContain(`gap on timeline 1: after ${segs[segs.length - 3]!.slice(0, 24)}, next is ${segs[segs.length - 1]!.slice(0, 24)}`);
    expect(r.stdout).toContain("info file 'archive/ver/archive.info.copy': invalid");
    expect(r.stdout).toContain(`bad: 0000000100000000/${segs[0]}:`);
    expect(r.stdout).toContain('bad: pg_data/global/pg_filenode.map:');
    expect(r.stdout).toContain(`info file 'backup/ver/${label}/backup.manifest': invalid`);
    // The manifest's .copy kept the backup readable: its other files were still checked.
    const report = JSON.parse((await stack.admin(['verify', `--stanza=${stack.stanza}`, '--output=json'])).stdout);
    expect(report.backups[0].files).toBeGreaterThan(900);
    expect(report.backups[0].bad).toHaveLength(2);
  });
});

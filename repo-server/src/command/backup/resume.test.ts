import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PosixStorage, compressFilters, infoFileLoad } from '@openrds/common';
import type { ManifestFile } from '@openrds/common';
import { Repo, type BackupInfo } from '../../repo/repo';
import { PartialSaver, partialKey, resumeCheck, resumeFind, resumeRefusal, type BackupPartial, type ResumeWanted } from './resume';

const sha256Hex = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const want: ResumeWanted = { type: 'full', systemId: '7000', pgVersion: 15, compressType: 'zst', resume: true };
const partialOf = (label: string, over: Partial<BackupPartial> = {}): BackupPartial => ({
  version: 1, label, type: 'full', systemId: '7000', pgVersion: 15, compressType: 'zst', compressLevel: 3, timestampStart: 1, files: [], ...over,
});

describe('resumeRefusal', () => {
  it('resumes a matching interrupted full backup', () => {
    expect(resumeRefusal(partialOf('20261124-100000F'), want)).toBeUndefined();
  });
  it.each([
    ['no record', undefined, want, 'it has no resumable record'],
    ['--no-resume', partialOf('x'), { ...want, resume: false }, 'resume is disabled (--no-resume)'],
    ['an interrupted incr', partialOf('x', { type: 'incr' }), { ...want, type: 'incr' }, 'an interrupted incr backup is not resumed'],
    ['a diff now', partialOf('x'), { ...want, type: 'diff' }, 'the new backup is diff, the interrupted one full'],
    ['another cluster', partialOf('x', { systemId: '8000' }), want, 'it is of system-id 8000'],
    ['another compression', partialOf('x', { compressType: 'none' }), want, 'compress-type changed from none to zst'],
  ] as const)('refuses %s', (_what, partial, w, reason) => {
    expect(resumeRefusal(partial, w)).toContain(reason);
  });
});

describe('resume against a real posix repo', () => {
  let dir: string;
  let repo: Repo;
  const stanza = 'main';
  const info = { version: 1, db: { id: 1, systemId: '7000', pgVersion: 15 }, history: [], backups: [] } as unknown as BackupInfo;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'resume-'));
    repo = new Repo(new PosixStorage({ path: dir }));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  async function store(label: string, name: string, data: Buffer): Promise<void> {
    await pipeline([Readable.from([data]), ...compressFilters('zst', 1).map((f) => f.stream), repo.storage.newWrite(repo.backupFileKey(stanza, label, name, 'zst'))]);
  }
  const listing = (name: string, size: number, mtime: number): ManifestFile => ({ name, size, mtime, sha256: '', repoSize: 0, mode: 0o600 });

  it('keeps the newest matching set, removes the others with their reason, and re-checks stored files', async () => {
    const old = '20261124-090000F', label = '20261124-100000F', incr = '20261124-090000F_20261124-093000I';
    const a = Buffer.from('a'.repeat(1000)), b = Buffer.from('b'.repeat(2000)), c = Buffer.from('c'.repeat(3000));
    await store(old, 'pg_data/x', a);
    await store(incr, 'pg_data/x', a);
    const saver = new PartialSaver(repo, stanza, partialOf(label), [], 1, false);
    for (const [name, data] of [['pg_data/a', a], ['pg_data/b', b], ['pg_data/c', c]] as const) {
      await store(label, name, data);
      saver.add({ name, size: data.length, mtime: 100, sha256: sha256Hex(data), repoSize: 10 });
    }
    await saver.settle();
    expect(saver.hasSaved).toBe(true);
    await store(label, 'pg_data/unrecorded', a);
    // Damage c's repo bytes: the re-check must notice.
    const cKey = path.join(dir, repo.backupFileKey(stanza, label, 'pg_data/c', 'zst'));
    const bytes = fs.readFileSync(cKey);
    bytes[bytes.length - 6] ^= 0xff;
    fs.writeFileSync(cKey, bytes);
    await infoFileLoad(repo.storage, partialKey(repo, stanza, label));

    const resumed = await resumeFind(repo, stanza, info, want);
    expect(resumed?.label).toBe(label);
    expect(resumed?.files.map((f) => f.name)).toEqual(['pg_data/a', 'pg_data/b', 'pg_data/c']);
    expect(fs.existsSync(path.join(dir, 'backup/main', old))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'backup/main', incr))).toBe(false);

    // b changed size in the cluster since it was copied; a is unchanged.
    const kept = await resumeCheck(repo, stanza, resumed!, [listing('pg_data/a', 1000, 100), listing('pg_data/b', 2001, 101), listing('pg_data/c', 3000, 100)], 2);
    expect([...kept.keys()]).toEqual(['pg_data/a']);
    const left = fs.readdirSync(path.join(dir, 'backup/main', label, 'pg_data')).sort();
    expect(left).toEqual(['a.zst']);
    expect(fs.existsSync(path.join(dir, partialKey(repo, stanza, label)))).toBe(true);
  });

  it('records the files a resumed backup kept, then the ones it adds, each saved as it was given', async () => {
    const label = '20261124-120000F';
    const kept = { name: 'pg_data/a', size: 1, mtime: 1, sha256: 'blake3:' + 'a'.repeat(64), repoSize: 9 };
    const saver = new PartialSaver(repo, stanza, partialOf(label), [kept], 1, true);
    expect(saver.fileCount).toBe(1);
    saver.add({ name: 'pg_data/b', size: 2, mtime: 2, sha256: 'c'.repeat(64), repoSize: 10 });
    saver.add({ name: 'pg_data/c', size: 3, mtime: 3, sha256: 'd'.repeat(64), repoSize: 11 });
    await saver.settle();
    const record = await infoFileLoad<BackupPartial>(repo.storage, partialKey(repo, stanza, label));
    expect(record).toEqual({ ...partialOf(label), files: [kept, { name: 'pg_data/b', size: 2, mtime: 2, sha256: 'c'.repeat(64), repoSize: 10 },
      { name: 'pg_data/c', size: 3, mtime: 3, sha256: 'd'.repeat(64), repoSize: 11 }] });
  });

  it('drops the files it holds only once a save has them all, and saves again at settle what a failed save had', async () => {
    const label = '20261124-130000F';
    const file = (n: number): { name: string; size: number; mtime: number; sha256: string; repoSize: number } =>
      ({ name: `pg_data/f${n}`, size: n, mtime: n, sha256: 'e'.repeat(64), repoSize: n });
    // A threshold never reached: only explicit saves.
    const saver = new PartialSaver(repo, stanza, partialOf(label), [], Number.MAX_SAFE_INTEGER, false);
    saver.add(file(1));
    saver.release();
    // Nothing saved yet: the files stay, and settle saves them.
    expect(saver.fileCount).toBe(1);
    const realNewWrite = repo.storage.newWrite.bind(repo.storage);
    const spy = jest.spyOn(repo.storage, 'newWrite').mockImplementation(() => { throw new Error('repo unreachable'); });
    saver.add(file(2));
    await saver.save();
    saver.release();
    expect(saver.hasSaved).toBe(false);
    spy.mockImplementation(realNewWrite);
    await saver.settle();
    expect((await infoFileLoad<BackupPartial>(repo.storage, partialKey(repo, stanza, label))).files).toEqual([file(1), file(2)]);
    // Saved whole: released, counted still, and a later settle writes nothing more (none is unsaved).
    saver.release();
    expect(saver.fileCount).toBe(2);
    spy.mockClear();
    await saver.settle();
    await saver.save();
    expect(spy).not.toHaveBeenCalled();
    // Nothing may be added once released (a save would then record only the newcomers).
    expect(() => saver.add(file(3))).toThrow('recorded after the resumable record was released');
    expect((await infoFileLoad<BackupPartial>(repo.storage, partialKey(repo, stanza, label))).files).toEqual([file(1), file(2)]);
  });

  it('removes everything with --no-resume, and a set without a record', async () => {
    await store('20261124-100000F', 'pg_data/a', Buffer.from('a'));
    const saver = new PartialSaver(repo, stanza, partialOf('20261124-100000F'), [], 1, false);
    saver.add({ name: 'pg_data/a', size: 1, mtime: 1, sha256: sha256Hex(Buffer.from('a')), repoSize: 1 });
    await saver.settle();
    await store('20261124-110000F', 'pg_data/a', Buffer.from('a'));
    expect(await resumeFind(repo, stanza, info, { ...want, resume: false })).toBeUndefined();
    expect(fs.readdirSync(path.join(dir, 'backup/main'))).toEqual([]);
  });
});

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PosixStorage, StanzaMissingError } from '@openrds/common';
import { Repo, type ArchiveInfo } from './repo';

const db = (id: number, systemId: string) => ({ id, systemId, pgVersion: 15, catalogVersion: 202209061, controlVersion: 1300 });

describe('Repo.archiveInfoRecent (the WAL path\'s archive.info)', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'openrds-repo-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('keeps what it read, and sees a save of this process at once', async () => {
    const repo = new Repo(new PosixStorage({ path: dir }));
    await expect(repo.archiveInfoRecent('main')).rejects.toBeInstanceOf(StanzaMissingError);
    const first: ArchiveInfo = { version: 1, db: db(1, '7300000000000000001'), history: [db(1, '7300000000000000001')] };
    await repo.archiveInfoSave('main', first);
    expect((await repo.archiveInfoRecent('main')).db.systemId).toBe('7300000000000000001');
    // Another writer (by hand, another process): not read again while it is kept.
    const other = new Repo(new PosixStorage({ path: dir }));
    const second: ArchiveInfo = { version: 1, db: db(2, '7300000000000000002'), history: [db(1, '7300000000000000001'), db(2, '7300000000000000002')] };
    await other.archiveInfoSave('main', second);
    expect((await repo.archiveInfoRecent('main')).db.systemId).toBe('7300000000000000001');
    expect((await repo.archiveInfoLoad('main')).db.systemId).toBe('7300000000000000002');
    // A save through this repo (stanza-upgrade) drops what was kept.
    await repo.archiveInfoSave('main', second);
    expect((await repo.archiveInfoRecent('main')).db.id).toBe(2);
  });

  it('serves what it kept while it reads the file again in the background, and waits once it is a minute older than that', async () => {
    const repo = new Repo(new PosixStorage({ path: dir }));
    const first: ArchiveInfo = { version: 1, db: db(1, '7300000000000000001'), history: [db(1, '7300000000000000001')] };
    await repo.archiveInfoSave('main', first);
    const now = Date.now();
    const clock = jest.spyOn(Date, 'now').mockReturnValue(now);
    try {
      expect((await repo.archiveInfoRecent('main')).db.id).toBe(1);
      const second: ArchiveInfo = { version: 1, db: db(2, '7300000000000000002'), history: [db(1, '7300000000000000001'), db(2, '7300000000000000002')] };
      await new Repo(new PosixStorage({ path: dir })).archiveInfoSave('main', second);
      // 11 s on: the kept one answers at once, and the read it started keeps the new one.
      clock.mockReturnValue(now + 11_000);
      expect((await repo.archiveInfoRecent('main')).db.id).toBe(1);
      for (let i = 0; i < 100 && (await repo.archiveInfoRecent('main')).db.id !== 2; i++) await new Promise((r) => setTimeout(r, 10));
      expect((await repo.archiveInfoRecent('main')).db.id).toBe(2);
      // Long unused (past the minute): read before it answers.
      await new Repo(new PosixStorage({ path: dir })).archiveInfoSave('main', first);
      clock.mockReturnValue(now + 11_000 + 80_000);
      expect((await repo.archiveInfoRecent('main')).db.id).toBe(1);
    } finally {
      clock.mockRestore();
    }
  });
});

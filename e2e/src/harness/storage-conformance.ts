import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { FileMissingError, type Storage } from '@openrds/common';

async function readAll(s: Storage, key: string, opts?: { offset?: number; limit?: number }): Promise<Buffer> {
  const parts: Buffer[] = [];
  await pipeline(await s.newRead(key, opts), new Writable({ write: (c: Buffer, _e, cb) => { parts.push(c); cb(); } }));
  return Buffer.concat(parts);
}

async function write(s: Storage, key: string, data: Buffer, chunk = 256 * 1024): Promise<void> {
  const parts: Buffer[] = [];
  for (let o = 0; o < data.length; o += chunk) parts.push(data.subarray(o, o + chunk));
  await pipeline(Readable.from(parts), s.newWrite(key));
}

/**
 * The behaviour every repository driver must have (storage.ts), as jest tests: run against
 * posix, s3 (radosgw) and azure (azurite). `large` is bigger than the driver's part size.
 */
export function storageConformance(name: string, make: () => Storage, opts: { large: number }): void {
  describe(`${name} storage conformance`, () => {
    let s: Storage;
    const base = `conf-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    beforeAll(() => { s = make(); });

    it('writes are complete when the stream finishes, overwrite whole, and read back', async () => {
      const data = randomBytes(300_000);
      await write(s, `${base}/a/file1`, data);
      expect((await readAll(s, `${base}/a/file1`)).equals(data)).toBe(true);
      expect(await s.exists(`${base}/a/file1`)).toBe(true);
      expect(await s.info(`${base}/a/file1`)).toEqual(expect.objectContaining({ name: 'file1', type: 'file', size: data.length }));
      const smaller = randomBytes(1000);
      await write(s, `${base}/a/file1`, smaller);
      expect((await s.get(`${base}/a/file1`)).equals(smaller)).toBe(true);
      await s.put(`${base}/a/empty`, Buffer.alloc(0));
      expect((await s.get(`${base}/a/empty`)).length).toBe(0);
      expect((await readAll(s, `${base}/a/empty`)).length).toBe(0);
    });

    it('a write destroyed before it finished leaves nothing at the key (small and multipart)', async () => {
      for (const size of [10_000, opts.large]) {
        const key = `${base}/destroyed-${size}`;
        const w = s.newWrite(key);
        const piece = randomBytes(Math.min(size, 1024 * 1024));
        for (let sent = 0; sent < size; sent += piece.length) {
          if (!w.write(piece)) await new Promise((r) => w.once('drain', r));
        }
        w.destroy(new Error('cut'));
        await finished(w).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 200));
        expect(await s.exists(key)).toBe(false);
        expect(await s.list(base)).not.toContain(`destroyed-${size}`);
      }
    });

    it('reads ranges: offset, limit, both, past the end', async () => {
      const data = randomBytes(100_000);
      await s.put(`${base}/range`, data);
      expect((await readAll(s, `${base}/range`, { offset: 1000 })).equals(data.subarray(1000))).toBe(true);
      expect((await readAll(s, `${base}/range`, { limit: 10 })).equals(data.subarray(0, 10))).toBe(true);
      expect((await readAll(s, `${base}/range`, { offset: 99_990, limit: 100 })).equals(data.subarray(99_990))).toBe(true);
      expect((await readAll(s, `${base}/range`, { offset: 50_000, limit: 1 })).equals(data.subarray(50_000, 50_001))).toBe(true);
    });

    it('lists one level (files and paths, sorted, filtered) and everything below, paginating', async () => {
      await s.put(`${base}/l/b.txt`, 'b');
      await s.put(`${base}/l/a.txt`, 'a');
      await s.put(`${base}/l/sub/c.txt`, 'c');
      await s.put(`${base}/l/sub/deeper/d.txt`, 'd');
      expect(await s.list(`${base}/l`)).toEqual(['a.txt', 'b.txt', 'sub']);
      expect(await s.list(`${base}/l`, { expression: /\.txt$/ })).toEqual(['a.txt', 'b.txt']);
      expect(await s.list(`${base}/nothing-here`)).toEqual([]);
      expect((await s.info(`${base}/l/sub`))?.type).toBe('path');
      expect(await s.info(`${base}/l/none`)).toBeUndefined();
      const all: string[] = [];
      for await (const e of s.listRecursive!(`${base}/l`)) if (e.type === 'file') all.push(e.name);
      expect(all.sort()).toEqual(['a.txt', 'b.txt', 'sub/c.txt', 'sub/deeper/d.txt']);
      // More names than one listing page holds on object stores (1000).
      await Promise.all(Array.from({ length: 1100 }, (_, i) => s.put(`${base}/many/f${String(i).padStart(4, '0')}`, 'x')));
      const many = await s.list(`${base}/many`);
      expect(many.length).toBe(1100);
      expect(many[0]).toBe('f0000');
    });

    it('removes files and paths; a missing file is fine unless asked; reads of missing keys are FileMissingError', async () => {
      await s.put(`${base}/r/x`, 'x');
      await s.remove(`${base}/r/x`);
      expect(await s.exists(`${base}/r/x`)).toBe(false);
      await s.remove(`${base}/r/x`);
      await expect(s.remove(`${base}/r/x`, { errorOnMissing: true })).rejects.toThrow(FileMissingError);
      await expect(s.newRead(`${base}/r/x`)).rejects.toThrow(FileMissingError);
      await expect(s.get(`${base}/r/x`)).rejects.toThrow(FileMissingError);
      await s.put(`${base}/r/p/1`, '1');
      await s.put(`${base}/r/p/q/2`, '2');
      await s.pathRemove(`${base}/r/p`, { recurse: true });
      expect(await s.list(`${base}/r/p`)).toEqual([]);
      await s.pathRemove(`${base}/r/never`, { recurse: true });
      await s.pathRemove(`${base}/many`, { recurse: true });
      expect(await s.list(`${base}/many`)).toEqual([]);
    });

    it('streams a large file in and out (multipart where the store has it) with the same sha256', async () => {
      const size = opts.large + 3 * 1024 * 1024 + 17;
      const hashIn = createHash('sha256');
      const piece = randomBytes(1024 * 1024);
      let sent = 0;
      const source = Readable.from((function* gen() {
        while (sent < size) {
          const n = Math.min(piece.length, size - sent);
          const b = piece.subarray(0, n);
          hashIn.update(b);
          sent += n;
          yield b;
        }
      })());
      await pipeline(source, s.newWrite(`${base}/large`));
      expect((await s.info(`${base}/large`))?.size).toBe(size);
      const hashOut = createHash('sha256');
      let got = 0;
      await pipeline(await s.newRead(`${base}/large`), new Writable({ write: (c: Buffer, _e, cb) => { hashOut.update(c); got += c.length; cb(); } }));
      expect(got).toBe(size);
      expect(hashOut.digest('hex')).toBe(hashIn.digest('hex'));
    });

    it('takes concurrent writes to different keys', async () => {
      const blobs = Array.from({ length: 12 }, () => randomBytes(200_000 + Math.floor(Math.random() * 100_000)));
      await Promise.all(blobs.map((b, i) => write(s, `${base}/conc/${i}`, b, 64 * 1024)));
      const back = await Promise.all(blobs.map((_, i) => s.get(`${base}/conc/${i}`)));
      back.forEach((b, i) => expect(b.equals(blobs[i]!)).toBe(true));
    });

    afterAll(async () => { await s.pathRemove(base, { recurse: true }).catch(() => undefined); });
  });
}

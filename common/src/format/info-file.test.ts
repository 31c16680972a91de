import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { FileMissingError, FileReadError, FormatError } from '../error';
import { logInit, logSubscribe, type LogRecord } from '../log';
import { PosixStorage } from '../storage/posix';
import { canonicalJson, infoChecksum, infoFileLoad, infoFileLoadOne, infoFileSave } from './info-file';

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

describe('canonicalJson and infoChecksum', () => {
  it('sort keys at every level and drop white space', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"y":2,"z":1}]},"b":1}');
  });

  it('follow JSON.stringify for undefined, functions, non-finite numbers and toJSON', () => {
    const value = { u: undefined, f: () => 1, arr: [undefined, NaN, 'x'], when: new Date(Date.UTC(2026, 0, 2)) };
    expect(canonicalJson(value)).toBe('{"arr":[null,null,"x"],"when":"2026-01-02T00:00:00.000Z"}');
    expect(JSON.parse(canonicalJson(value))).toEqual(JSON.parse(JSON.stringify(value)));
    expect(() => canonicalJson({ n: 1n })).toThrow(FormatError);
  });

  it('sort the keys of every object shape, however many shapes alternate and in whatever order keys were made', () => {
    // Reference: a plain recursive serializer that sorts each object's keys (integer-like keys too, as strings).
    const sortedRef = (v: unknown): string => (Array.isArray(v) ? `[${v.map(sortedRef).join(',')}]`
      : v && typeof v === 'object' ? `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${sortedRef((v as Record<string, unknown>)[k])}`).join(',')}}`
        : JSON.stringify(v));
    const names = ['name', 'size', 'sha256', 'mtime', 'mode', 'reference', 'user', 'group', 'repoSize', 'b', 'a', '10', '2'];
    const list: Record<string, unknown>[] = [];
    for (let i = 0; i < 500; i++) {
      // Up to 13 keys, in a rotating order and subset: many more shapes than are kept.
      const o: Record<string, unknown> = {};
      for (let j = 0; j < 1 + (i % names.length); j++) o[names[(i + j * 7) % names.length]!] = j % 3 === 0 ? { y: i, x: [j] } : `${i}-${j}`;
      list.push(o);
    }
    expect(canonicalJson(list)).toBe(sortedRef(list));
    // Inherited enumerable keys are not serialized (as JSON.stringify), and do not confuse the shapes.
    const proto = { inherited: 1 };
    const child = Object.assign(Object.create(proto) as Record<string, unknown>, { b: 1, a: 2 });
    expect(canonicalJson([{ b: 1, a: 2 }, child, { b: 1, a: 2 }, child])).toBe('[{"a":2,"b":1},{"a":2,"b":1},{"a":2,"b":1},{"a":2,"b":1}]');
  });

  it('hash the canonical JSON without the checksum field, whatever the key order', () => {
    const content = { version: 1, db: { id: 1, systemId: '7300' }, list: [{ b: 2, a: 1 }] };
    expect(infoChecksum(content)).toBe(sha256(canonicalJson(content)));
    expect(infoChecksum({ list: [{ a: 1, b: 2 }], db: { systemId: '7300', id: 1 }, version: 1, checksum: 'old' })).toBe(infoChecksum(content));
    expect(infoChecksum({ ...content, version: 2 })).not.toBe(infoChecksum(content));
  });
});

describe('info files', () => {
  let dir: string;
  let storage: PosixStorage;
  let warnings: string[];
  let unsubscribe: () => void;
  beforeAll(() => logInit({ process: 'test', levelConsole: 'off' }));
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'info-'));
    storage = new PosixStorage({ path: dir });
    warnings = [];
    unsubscribe = logSubscribe((rec: LogRecord) => { if (rec.level === 'warn') warnings.push(rec.message); });
  });
  afterEach(() => {
    unsubscribe();
    jest.restoreAllMocks();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const read = (key: string): string => fs.readFileSync(path.join(dir, key), 'utf8');

  it('writes canonical JSON a line per entry and array element, checksum last, and the same .copy', async () => {
    const content = { version: 1, db: { id: 1, systemId: '7300' }, history: [{ id: 1 }, { id: 2 }], empty: [] };
    await infoFileSave(storage, 's/archive.info', content);
    const checksum = infoChecksum(content);
    expect(read('s/archive.info')).toBe(
      `{\n"db":{"id":1,"systemId":"7300"},\n"empty":[],\n"history":[\n{"id":1},\n{"id":2}\n],\n"version":1,\n"checksum":"${checksum}"\n}\n`);
    expect(read('s/archive.info.copy')).toBe(read('s/archive.info'));
    expect(JSON.parse(read('s/archive.info'))).toEqual({ ...content, checksum });
  });

  it('round-trips content with awkward strings and nested arrays', async () => {
    const content = {
      text: 'line one\nline two, "quoted" ],\\ and é ✓', nested: [[1, 2], [], [{ a: [3] }]], list: ['a,', '],', '{'], zero: 0, no: false,
    };
    await infoFileSave(storage, 'x.info', content);
    expect(await infoFileLoad(storage, 'x.info')).toEqual(content);
    expect(warnings).toEqual([]);
  });

  it('writes a large document in pieces, never as one string, and loads it back', async () => {
    const files = Array.from({ length: 200_000 }, (_v, i) => ({ name: `pg_data/base/1/${String(i).padStart(7, '0')}`, size: i, sha256: 'ab'.repeat(32) }));
    const realNewWrite = storage.newWrite.bind(storage);
    let largestWrite = 0;
    jest.spyOn(storage, 'newWrite').mockImplementation((key, opts) => {
      const w = realNewWrite(key, opts);
      const realWrite = w.write.bind(w) as (chunk: Buffer) => boolean;
      (w as Writable).write = ((chunk: Buffer) => { largestWrite = Math.max(largestWrite, chunk.length); return realWrite(chunk); }) as Writable['write'];
      return w;
    });
    await infoFileSave(storage, 'big.manifest', { version: 1, files });
    expect(fs.statSync(path.join(dir, 'big.manifest')).size).toBeGreaterThan(20 * 1024 * 1024);
    expect(fs.readFileSync(path.join(dir, 'big.manifest')).equals(fs.readFileSync(path.join(dir, 'big.manifest.copy')))).toBe(true);
    expect(largestWrite).toBeLessThan(128 * 1024);
    const back = await infoFileLoad<{ files: typeof files }>(storage, 'big.manifest');
    expect(back.files.length).toBe(files.length);
    expect(back.files[123_456]).toEqual(files[123_456]);
  }, 60_000);

  it('commits the main file before the copy, and on a failed write leaves the last saved pair and no temporary file', async () => {
    await infoFileSave(storage, 'w.info', { n: 1 });
    const realNewWrite = storage.newWrite.bind(storage);
    const committed: string[] = [];
    let failCopy = false;
    jest.spyOn(storage, 'newWrite').mockImplementation((key, opts) => {
      const w = realNewWrite(key, opts);
      w.on('finish', () => committed.push(key));
      if (failCopy && key.endsWith('.copy')) {
        const realWrite = w.write.bind(w) as (chunk: Buffer) => boolean;
        let n = 0;
        (w as Writable).write = ((chunk: Buffer) => {
          if (++n === 2) { w.destroy(new Error('disk full')); return false; }
          return realWrite(chunk);
        }) as Writable['write'];
      }
      return w;
    });
    const list = Array.from({ length: 5000 }, (_v, i) => `entry ${i}`);
    await infoFileSave(storage, 'w.info', { n: 2, list });
    expect(committed).toEqual(['w.info', 'w.info.copy']);
    expect(read('w.info.copy')).toBe(read('w.info'));
    failCopy = true;
    await expect(infoFileSave(storage, 'w.info', { n: 3, list })).rejects.toThrow('disk full');
    // Neither file was replaced (the copy failed while both were being written), nothing else is left.
    expect(await infoFileLoadOne(storage, 'w.info')).toEqual({ n: 2, list });
    expect(await infoFileLoadOne(storage, 'w.info.copy')).toEqual({ n: 2, list });
    expect(fs.readdirSync(dir).sort()).toEqual(['w.info', 'w.info.copy']);
  });

  it('falls back to the copy, with a warning, when the main file has a wrong checksum', async () => {
    await infoFileSave(storage, 'x.info', { n: 1 });
    fs.writeFileSync(path.join(dir, 'x.info'), read('x.info').replace('"n":1', '"n":2'));
    expect(await infoFileLoad(storage, 'x.info')).toEqual({ n: 1 });
    expect(warnings).toEqual([expect.stringMatching(/^unable to load 'x\.info' \(invalid checksum in 'x\.info': .*\): loaded 'x\.info\.copy' instead$/)]);
  });

  it('falls back to the copy when the main file is missing, truncated or not JSON', async () => {
    await infoFileSave(storage, 'x.info', { n: 1, list: [1, 2, 3] });
    const good = read('x.info');
    fs.writeFileSync(path.join(dir, 'x.info'), good.slice(0, good.length - 40));
    expect(await infoFileLoad(storage, 'x.info')).toEqual({ n: 1, list: [1, 2, 3] });
    fs.writeFileSync(path.join(dir, 'x.info'), 'garbage');
    expect(await infoFileLoad(storage, 'x.info')).toEqual({ n: 1, list: [1, 2, 3] });
    fs.rmSync(path.join(dir, 'x.info'));
    expect(await infoFileLoad(storage, 'x.info')).toEqual({ n: 1, list: [1, 2, 3] });
    expect(warnings.length).toBe(3);
    expect(warnings[2]).toContain("unable to open missing file 'x.info' for read");
  });

  it('fails with FormatError naming both files when both are damaged', async () => {
    await infoFileSave(storage, 'y.info', { n: 1 });
    fs.writeFileSync(path.join(dir, 'y.info'), '{ not json');
    fs.writeFileSync(path.join(dir, 'y.info.copy'), '{"n":1,"checksum":"00"}');
    const err = await infoFileLoad(storage, 'y.info').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect((err as Error).message).toMatch(/^unable to load 'y\.info' \(unable to parse 'y\.info': .*\) or 'y\.info\.copy' \(invalid checksum in 'y\.info\.copy': .*\)$/);
  });

  it('fails with FormatError when one is missing and the other damaged', async () => {
    await infoFileSave(storage, 'z.info', { n: 1 });
    fs.rmSync(path.join(dir, 'z.info'));
    fs.writeFileSync(path.join(dir, 'z.info.copy'), '{"n":1}');
    await expect(infoFileLoad(storage, 'z.info')).rejects.toThrow(new FormatError(
      "unable to load 'z.info' (unable to open missing file 'z.info' for read) or 'z.info.copy' ('z.info.copy' has no checksum)"));
  });

  it('fails with FileMissingError naming both files when both are missing', async () => {
    await expect(infoFileLoad(storage, 'none.info')).rejects.toThrow(new FileMissingError("unable to load 'none.info' or 'none.info.copy': both are missing"));
  });

  it('falls back to the copy when the main file cannot be read, and reports unreadable pairs as FileReadError', async () => {
    await infoFileSave(storage, 'r.info', { n: 1 });
    const realNewRead = storage.newRead.bind(storage);
    const unreadable = new Set(['r.info']);
    jest.spyOn(storage, 'newRead').mockImplementation(async (key, opts) => {
      if (unreadable.has(key)) throw Object.assign(new Error(`EACCES: permission denied, open '${key}'`), { code: 'EACCES' });
      return realNewRead(key, opts);
    });
    expect(await infoFileLoad(storage, 'r.info')).toEqual({ n: 1 });
    unreadable.add('r.info.copy');
    await expect(infoFileLoad(storage, 'r.info')).rejects.toThrow(FileReadError);
  });

  it('loads other JSON layouts of a valid document', async () => {
    const content = { b: [1, 2], a: { x: 'y' } };
    const doc = { ...content, checksum: infoChecksum(content) };
    fs.writeFileSync(path.join(dir, 'pretty.info'), JSON.stringify(doc, null, 2));
    fs.writeFileSync(path.join(dir, 'compact.info'), JSON.stringify(doc));
    expect(await infoFileLoadOne(storage, 'pretty.info')).toEqual(content);
    expect(await infoFileLoadOne(storage, 'compact.info')).toEqual(content);
  });

  it('refuses a document that is not an object', async () => {
    fs.writeFileSync(path.join(dir, 'arr.info'), '[1,2]');
    await expect(infoFileLoadOne(storage, 'arr.info')).rejects.toThrow("'arr.info' does not hold a JSON object");
    await expect(infoFileSave(storage, 'arr.info', [1, 2])).rejects.toThrow(FormatError);
  });
});

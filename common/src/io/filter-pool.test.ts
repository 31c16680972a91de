import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FilterPool, viewOfLarger, type PoolDeltaFile, type PoolMode } from './filter-pool';
import { ZstdDataError, zstdCompressBuffer, zstdDecompressBuffer } from './zstd';
import { checksumOf } from './checksum';
import { findFrameCompressedSize, getFrameContentSize } from 'zstd-napi/binding';
import { FileWriteError } from '../error';
import { CHUNK_HEADROOM } from '../rpc/chunk-encode';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function run(pool: FilterPool, mode: PoolMode, chunks: Buffer[]): Promise<{ out: Buffer; result: ReturnType<ReturnType<FilterPool['transform']>['result']> }> {
  const t = pool.transform(mode, 3);
  const parts: Buffer[] = [];
  await pipeline(Readable.from(chunks), t, new Writable({ write: (c: Buffer, _e, cb) => { parts.push(c); cb(); } }));
  return { out: Buffer.concat(parts), result: t.result() };
}

describe('FilterPool (worker threads)', () => {
  const pool = new FilterPool(2);
  afterAll(() => pool.close());
  // Text that compresses, random bytes that do not, in 1 MiB chunks: 6 MiB.
  const chunks = Array.from({ length: 6 }, (_, i) => (i % 2 ? randomBytes(1024 * 1024) : Buffer.from(`row ${i} `.repeat(1024 * 1024 / 8).slice(0, 1024 * 1024))));
  const data = Buffer.concat(chunks);

  it('compresses a whole buffer in one message, and checks a whole frame without sending its content back', async () => {
    const { result, out } = await pool.compressWhole(Buffer.from(data), 3);
    expect(zstdDecompressBuffer(out, data.length).equals(data)).toBe(true);
    expect(result).toEqual({ inSha256: sha(data), inSize: data.length, outSha256: sha(out), outSize: out.length });
    const check = await pool.zstdDigestWhole(out, 64);
    expect(check.result).toEqual({ inSha256: sha(out), inSize: out.length, outSha256: sha(data), outSize: data.length });
    expect(check.head.equals(data.subarray(0, 64))).toBe(true);
    // One frame per MiB of content, each with its content size (no content checksum: the sha256 is it).
    let frames = 0;
    for (let off = 0; off < out.length; frames++) {
      expect(getFrameContentSize(out.subarray(off))).toBe(Math.min(1024 * 1024, data.length - frames * 1024 * 1024));
      off += findFrameCompressedSize(out.subarray(off));
    }
    expect(frames).toBe(6);
    // Damage: a truncated frame is a ZstdDataError; a flipped byte in a frame without checksum
    // fails or changes the content's sha256 (which every reader checks); the pool keeps working.
    await expect(pool.zstdDigestWhole(out.subarray(0, out.length - 10), 64)).rejects.toThrow(ZstdDataError);
    const flipped = Buffer.from(out);
    flipped[Math.floor(flipped.length / 2)]! ^= 0xff;
    const damaged = await pool.zstdDigestWhole(flipped, 64).catch((err: unknown) => err);
    expect(damaged instanceof ZstdDataError || (damaged as { result: { outSha256: string } }).result.outSha256 !== sha(data)).toBe(true);
    // With a content checksum (the streaming compressor's single frame) a flipped byte is a ZstdDataError.
    const single = zstdCompressBuffer(data, 3);
    single[Math.floor(single.length / 2)]! ^= 0xff;
    await expect(pool.zstdDigestWhole(single, 64)).rejects.toThrow(ZstdDataError);
    await expect(pool.zstdDigestWhole(Buffer.alloc(0), 64)).rejects.toThrow('zstd data is empty');
    expect((await pool.zstdDigestWhole(out, 64)).result.outSize).toBe(data.length);
  });

  it('writes zstd bytes to a descriptor and checks them on one worker, moving the parts that own their memory', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pool-unzstd-write-'));
    try {
      const { out } = await pool.compressWhole(Buffer.from(data), 3);
      // As a gRPC stream delivers them: parts in buffers of their own (a few header bytes before
      // each), and one view into a larger buffer, which is copied rather than moved.
      const cut = [0, 100_000, 400_000, 900_000, out.length];
      const parts = cut.slice(1).map((end, i) => {
        const own = Buffer.allocUnsafeSlow(end - cut[i]! + 5);
        out.copy(own, 5, cut[i]!, end);
        return own.subarray(5);
      });
      const larger = Buffer.alloc(8 * 1024 * 1024);
      out.copy(larger, 1024, cut[1]!, cut[2]!);
      parts[1] = larger.subarray(1024, 1024 + cut[2]! - cut[1]!);
      const file = path.join(dir, 'seg');
      const fd = fs.openSync(file, 'w');
      fs.writeSync(fd, Buffer.from('prefix'));
      const got = await pool.zstdWriteDigest(parts, 64, fd, 6);
      fs.closeSync(fd);
      expect(got.sha256).toBe(sha(data));
      expect(got.size).toBe(data.length);
      expect(got.head.equals(data.subarray(0, 64))).toBe(true);
      expect(fs.readFileSync(file).equals(Buffer.concat([Buffer.from('prefix'), out]))).toBe(true);
      // Moved: the parts that owned their memory are detached here; the view was copied.
      expect(parts[0]!.length).toBe(0);
      expect(larger.length).toBe(8 * 1024 * 1024);
      // Damaged bytes are a ZstdDataError, after they were written (the caller drops the file).
      const fd2 = fs.openSync(path.join(dir, 'bad'), 'w');
      await expect(pool.zstdWriteDigest([Buffer.from(out.subarray(0, out.length - 10))], 64, fd2, 0)).rejects.toThrow(ZstdDataError);
      await expect(pool.zstdWriteDigest([], 64, fd2, 0)).rejects.toThrow('zstd data is empty');
      fs.closeSync(fd2);
      // A descriptor that cannot be written is a FileWriteError; the pool goes on working.
      const ro = fs.openSync(file, 'r');
      await expect(pool.zstdWriteDigest([Buffer.from(out)], 64, ro, 0)).rejects.toThrow(FileWriteError);
      fs.closeSync(ro);
      expect((await pool.zstdDigestWhole(out, 64)).result.outSha256).toBe(sha(data));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('sends a slice of a larger buffer as its own bytes: the buffer stays usable and the other slices as they were', async () => {
    const big = Buffer.concat([data, data, data]);
    const slice = big.subarray(data.length, data.length + 1024 * 1024);
    expect(viewOfLarger(slice)).toBe(true);
    const { result, out } = await pool.compressWhole(slice, 3);
    expect(result.inSha256).toBe(sha(data.subarray(0, 1024 * 1024)));
    expect(zstdDecompressBuffer(out, slice.length).equals(data.subarray(0, 1024 * 1024))).toBe(true);
    // compressBytes (no checksum): the same frames.
    expect((await pool.compressBytes(slice, 3)).equals(out)).toBe(true);
    // Not moved to the worker: the whole buffer is still here, unchanged.
    expect(big.buffer.byteLength).toBeGreaterThanOrEqual(3 * data.length);
    expect(sha(big)).toBe(sha(Buffer.concat([data, data, data])));
    // A buffer of its own, or a small slice of Buffer's shared pool, is sent as it is.
    expect(viewOfLarger(Buffer.allocUnsafeSlow(1024))).toBe(false);
    expect(viewOfLarger(Buffer.from('abc'))).toBe(false);
  });

  it('reads and compresses a file whole on a worker, as compressWhole does its bytes; a gone file is undefined, a larger one refused', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'openrds-pool-file-'));
    try {
      // 6 MiB and a bit: the last frame is short; an empty file is one empty frame.
      const content = Buffer.concat([data, Buffer.from('tail')]);
      fs.writeFileSync(path.join(dir, 'seg'), content);
      fs.writeFileSync(path.join(dir, 'empty'), '');
      const r = await pool.compressFile(path.join(dir, 'seg'), 3, 64 * 1024 * 1024);
      expect([r!.sha256, r!.size]).toEqual([sha(content), content.length]);
      // A frame per MiB of content, each compressed straight into a slot of the frame slab shared
      // with the workers, after the headroom a message header takes (free: the slot's start).
      expect(r!.frames.length).toBe(Math.ceil(content.length / (1024 * 1024)));
      const slab = r!.frames[0]!.buffer;
      expect(slab).toBeInstanceOf(SharedArrayBuffer);
      for (const f of r!.frames) expect([f.buffer, f.byteOffset % 4096]).toEqual([slab, CHUNK_HEADROOM]);
      const out = Buffer.concat(r!.frames);
      expect(zstdDecompressBuffer(out, content.length).equals(content)).toBe(true);
      expect(out.equals((await pool.compressWhole(Buffer.from(content), 3)).out)).toBe(true);
      // Slots not given back are not lent again; given back (twice: once counts), the next
      // file's frames go into the same slots. The bytes are the same each time.
      const slots = (frames: Buffer[]): number[] => frames.map((f) => f.byteOffset).sort((x, y) => x - y);
      const other = await pool.compressFile(path.join(dir, 'seg'), 3, 64 * 1024 * 1024);
      expect(slots(other!.frames).some((at) => slots(r!.frames).includes(at))).toBe(false);
      expect(Buffer.concat(other!.frames).equals(out)).toBe(true);
      pool.framesRecycle(r!.frames);
      pool.framesRecycle(r!.frames);
      pool.framesRecycle(other!.frames);
      const again = await pool.compressFile(path.join(dir, 'seg'), 3, 64 * 1024 * 1024);
      expect(slots(again!.frames)).toEqual(slots(other!.frames));
      expect(Buffer.concat(again!.frames).equals(out)).toBe(true);
      pool.framesRecycle(again!.frames);
      // A file of more frames than a file is lent slots (16): the rest in memory of their own.
      const big = Buffer.concat([content, content, content]);
      fs.writeFileSync(path.join(dir, 'big'), big);
      const many = await pool.compressFile(path.join(dir, 'big'), 3, 64 * 1024 * 1024);
      expect(many!.frames.map((f) => f.buffer instanceof SharedArrayBuffer)).toEqual(many!.frames.map((_, i) => i < 16));
      for (const f of many!.frames.slice(16)) expect([f.byteOffset, f.buffer.byteLength]).toEqual([CHUNK_HEADROOM, CHUNK_HEADROOM + f.length]);
      expect(zstdDecompressBuffer(Buffer.concat(many!.frames), big.length).equals(big)).toBe(true);
      pool.framesRecycle(many!.frames);
      const empty = await pool.compressFile(path.join(dir, 'empty'), 3, 1024);
      expect(empty!.size).toBe(0);
      expect(zstdDecompressBuffer(Buffer.concat(empty!.frames), 0).length).toBe(0);
      expect(await pool.compressFile(path.join(dir, 'gone'), 3, 1024)).toBeUndefined();
      await expect(pool.compressFile(path.join(dir, 'seg'), 3, 1024 * 1024)).rejects.toThrow(/unable to read '.*seg': the file is larger than 1048576 bytes/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('compresses into a frame the main-thread decompressor reads, hashing both sides', async () => {
    const { out, result } = await run(pool, 'compress', chunks);
    expect(zstdDecompressBuffer(out, data.length).equals(data)).toBe(true);
    expect(result).toEqual({ inSha256: sha(data), inSize: data.length, outSha256: sha(out), outSize: out.length });
  });

  it('decompresses and hashes, and several streams run at once in order', async () => {
    const packed = (await run(pool, 'compress', chunks)).out;
    const pieces = [packed.subarray(0, 1000), packed.subarray(1000, 500_000), packed.subarray(500_000)];
    const results = await Promise.all([0, 1, 2, 3].map(() => run(pool, 'decompress', pieces)));
    for (const r of results) {
      expect(r.out.equals(data)).toBe(true);
      expect(r.result.outSha256).toBe(sha(data));
      expect(r.result.inSize).toBe(packed.length);
    }
    const digest = await run(pool, 'digest', chunks);
    expect(digest.out.length).toBe(0);
    expect(digest.result.inSha256).toBe(sha(data));
    const hashed = await run(pool, 'hash', chunks);
    expect(hashed.out.equals(data)).toBe(true);
    expect(hashed.result.inSha256).toBe(sha(data));
  });

  it('holds the writer back while the reader is slow (memory stays bounded)', async () => {
    const t = pool.transform('compress', 1);
    let maxQueued = 0;
    const input = Array.from({ length: 24 }, () => randomBytes(1024 * 1024));
    await pipeline(Readable.from(input), t, new Writable({
      highWaterMark: 1,
      write: (_c: Buffer, _e, cb) => { maxQueued = Math.max(maxQueued, t.readableLength); setTimeout(cb, 5); },
    }));
    expect(t.result().inSize).toBe(24 * 1024 * 1024);
    // The readable side's high-water mark (1 MiB) plus what was in flight when it filled up.
    expect(maxQueued).toBeLessThanOrEqual(6 * 1024 * 1024);
  });

  it('fails damaged or truncated zstd with ZstdDataError, and the pool keeps working', async () => {
    const packed = (await run(pool, 'compress', chunks)).out;
    const damaged = Buffer.from(packed);
    damaged[Math.floor(damaged.length / 2)] ^= 0xff;
    await expect(run(pool, 'decompress', [damaged])).rejects.toBeInstanceOf(ZstdDataError);
    await expect(run(pool, 'decompress', [packed.subarray(0, packed.length - 10)])).rejects.toBeInstanceOf(ZstdDataError);
    await expect(run(pool, 'decompress', [])).rejects.toBeInstanceOf(ZstdDataError);
    expect((await run(pool, 'decompress', [packed])).out.equals(data)).toBe(true);
  });

  it('does not keep a process alive once idle (a stopping daemon exits)', () => {
    // The built module (tsc -b runs before jest), in a process of its own that must end by itself.
    const built = path.resolve(__dirname, '..', '..', 'dist', 'io', 'filter-pool.js');
    const script = `const { FilterPool } = require(${JSON.stringify(built)});
      const { Readable, Writable } = require('node:stream');
      const t = new FilterPool(1).transform('compress', 1);
      Readable.from([Buffer.alloc(1 << 20, 1)]).pipe(t).pipe(new Writable({ write: (c, e, cb) => cb() }))
        .on('finish', () => console.log('done ' + t.result().inSize));`;
    const started = Date.now();
    expect(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 }).trim()).toBe('done 1048576');
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  describe('files read and written on the workers', () => {
    let dir: string;
    beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pool-files-')); });
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
    const collect = async (r: Readable): Promise<Buffer> => { const parts: Buffer[] = []; for await (const c of r) parts.push(c as Buffer); return Buffer.concat(parts); };

    it('commits a temp file in one message: its name, its bytes, the descriptor left open; a failure leaves the temp file', async () => {
      const tmp = path.join(dir, 'c.tmp'), file = path.join(dir, 'c');
      const fd = fs.openSync(tmp, 'w');
      try {
        fs.writeSync(fd, data);
        await pool.commitFile(fd, tmp, file);
        expect(fs.existsSync(tmp)).toBe(false);
        expect(fs.readFileSync(file).equals(data)).toBe(true);
        // Still open: its owner closes it.
        expect(fs.fstatSync(fd).size).toBe(data.length);
      } finally {
        fs.closeSync(fd);
      }
      const tmp2 = path.join(dir, 'd.tmp');
      const fd2 = fs.openSync(tmp2, 'w');
      try {
        await expect(pool.commitFile(fd2, tmp2, path.join(dir, 'no-such-dir', 'd'))).rejects.toThrow(/ENOENT/);
        expect(fs.existsSync(tmp2)).toBe(true);
      } finally {
        fs.closeSync(fd2);
      }
    });

    it('hashes a file where it lies, and says when it is gone', async () => {
      fs.writeFileSync(path.join(dir, 'h'), data);
      expect(await pool.hashFile(path.join(dir, 'h'))).toEqual({ sha256: sha(data), size: data.length });
      expect(await pool.hashFile(path.join(dir, 'nope'))).toBeUndefined();
      fs.writeFileSync(path.join(dir, 'empty'), '');
      expect(await pool.hashFile(path.join(dir, 'empty'))).toEqual({ sha256: sha(Buffer.alloc(0)), size: 0 });
    });

    it('reads a file up to its listed size, compressed or as is, and stops early at a truncation', async () => {
      const file = path.join(dir, 'r');
      fs.writeFileSync(file, data);
      const listed = data.length - 12345;
      const z = (await pool.readFile(file, listed, 'compress', 3))!;
      const packed = await collect(z);
      const want = data.subarray(0, listed);
      expect(zstdDecompressBuffer(packed, listed).equals(want)).toBe(true);
      expect(z.result()).toEqual({ inSha256: sha(want), inSize: listed, outSha256: sha(packed), outSize: packed.length });
      const plain = (await pool.readFile(file, data.length + 999, 'hash'))!;
      expect((await collect(plain)).equals(data)).toBe(true);
      expect(plain.result()).toEqual({ inSha256: sha(data), inSize: data.length, outSha256: sha(data), outSize: data.length });
      expect(await pool.readFile(path.join(dir, 'gone'), 10, 'compress')).toBeUndefined();
      // Frames of a MiB each: the restore side (a worker's streaming decompressor) reads them as one.
      await pipeline(Readable.from([packed]), await pool.writeFile(path.join(dir, 'r-back'), 0o600, 'decompress'));
      expect(fs.readFileSync(path.join(dir, 'r-back')).equals(want)).toBe(true);
      // Content that ends exactly at a frame's end (and fills the writer's buffers exactly).
      fs.writeFileSync(path.join(dir, 'r-2m'), data.subarray(0, 2 * 1024 * 1024));
      const twoPacked = await collect((await pool.readFile(path.join(dir, 'r-2m'), 2 * 1024 * 1024, 'compress', 1))!);
      await pipeline(Readable.from([twoPacked]), await pool.writeFile(path.join(dir, 'r-2m-back'), 0o600, 'decompress'));
      expect(fs.readFileSync(path.join(dir, 'r-2m-back')).equals(data.subarray(0, 2 * 1024 * 1024))).toBe(true);
      // An empty file is one empty frame.
      fs.writeFileSync(path.join(dir, 'r-empty'), '');
      const e = (await pool.readFile(path.join(dir, 'r-empty'), 0, 'compress', 3))!;
      const emptyPacked = await collect(e);
      expect(emptyPacked.length).toBeGreaterThan(0);
      expect(zstdDecompressBuffer(emptyPacked, 0).length).toBe(0);
    });

    it("passes written bytes through the worker's inbox, around its end, and posts them when it is full or they are large", async () => {
      const one = new FilterPool(1);
      try {
        // 3 MiB pieces wrap around the 16 MiB inbox; a 9 MiB one is posted; two files at once
        // on one worker fill the inbox while its writes are queued.
        const big = Buffer.concat([randomBytes(4 * 1024 * 1024), Buffer.alloc(8 * 1024 * 1024, 7)]);
        const pieces = [...Array.from({ length: 16 }, (_, i) => big.subarray((i % 4) * 3 * 1024 * 1024, ((i % 4) + 1) * 3 * 1024 * 1024)), big.subarray(0, 9 * 1024 * 1024)];
        const want = Buffer.concat(pieces);
        const packed = zstdCompressBuffer(want, 1);
        const [a, b] = await Promise.all([one.writeFile(path.join(dir, 'inbox-a'), 0o600, 'hash'), one.writeFile(path.join(dir, 'inbox-b'), 0o600, 'decompress')]);
        const packedPieces = Array.from({ length: Math.ceil(packed.length / 100_000) }, (_, i) => packed.subarray(i * 100_000, (i + 1) * 100_000));
        await Promise.all([pipeline(Readable.from(pieces), a), pipeline(Readable.from(packedPieces), b)]);
        await one.syncAll();
        for (const [name, w] of [['inbox-a', a], ['inbox-b', b]] as const) {
          expect(fs.readFileSync(path.join(dir, name)).equals(want)).toBe(true);
          expect(w.result().outSha256).toBe(sha(want));
        }
      } finally {
        await one.close();
      }
    });

    it('writes a file from zstd or plain repo bytes, fsynced, and refuses damaged data', async () => {
      const packed = zstdCompressBuffer(data, 1);
      const file = path.join(dir, 'w');
      const w = await pool.writeFile(file, 0o640, 'decompress', 1_700_000_000);
      await pipeline(Readable.from([packed.subarray(0, 1000), packed.subarray(1000)]), w);
      // The fsync runs in the background; syncAll waits for it.
      await pool.syncAll();
      expect(fs.readFileSync(file).equals(data)).toBe(true);
      expect(fs.statSync(file).mtimeMs).toBe(1_700_000_000_000);
      expect(fs.statSync(file).mode & 0o777).toBe(0o640);
      expect(w.result()).toEqual({ inSha256: sha(packed), inSize: packed.length, outSha256: sha(data), outSize: data.length });
      const h = await pool.writeFile(path.join(dir, 'w2'), 0o640, 'hash');
      await pipeline(Readable.from(chunks), h);
      expect(fs.readFileSync(path.join(dir, 'w2')).equals(data)).toBe(true);
      expect(h.result().outSha256).toBe(sha(data));
      const damaged = Buffer.from(packed);
      damaged[Math.floor(damaged.length / 2)]! ^= 0xff;
      await expect(pipeline(Readable.from([damaged]), await pool.writeFile(path.join(dir, 'w3'), 0o600, 'decompress'))).rejects.toBeInstanceOf(ZstdDataError);
      await expect(pipeline(Readable.from([packed.subarray(0, packed.length - 5)]), await pool.writeFile(path.join(dir, 'w4'), 0o600, 'decompress')))
        .rejects.toBeInstanceOf(ZstdDataError);
      await expect(pool.writeFile(path.join(dir, 'no', 'such', 'dir'), 0o600, 'hash')).rejects.toBeInstanceOf(FileWriteError);
      // The pool still works after the failures.
      expect((await pool.hashFile(file))!.sha256).toBe(sha(data));
    });

    it('writes with O_DIRECT when asked: whole aligned MiBs, the tail cut to size, the same bytes as buffered', async () => {
      // Sizes around the alignment: a tail of 123 bytes, exact MiBs, one byte past them, a 4 KiB
      // multiple that is not a MiB one, and less than one block.
      const mixed = Buffer.concat([randomBytes(2 * 1024 * 1024), Buffer.alloc(3 * 1024 * 1024, 5), randomBytes(1024 * 1024)]);
      for (const size of [5 * 1024 * 1024 + 123, 4 * 1024 * 1024, 4 * 1024 * 1024 + 1, 40960, 100]) {
        const want = mixed.subarray(0, size);
        for (const mode of ['decompress', 'hash'] as const) {
          const file = path.join(dir, `direct-${mode}-${size}`);
          const w = await pool.writeFile(file, 0o600, mode, 1_700_000_000, 'sha256', true);
          // ext4 (the test's temp directory) takes O_DIRECT; a file system that does not is written buffered.
          if (fs.statfsSync && fs.statfsSync(dir).type === 0xef53) expect(w.direct).toBe(true);
          const input = mode === 'decompress' ? zstdCompressBuffer(want, 1) : want;
          await pipeline(Readable.from(Array.from({ length: Math.ceil(input.length / 300_000) }, (_, i) => input.subarray(i * 300_000, (i + 1) * 300_000))), w);
          await pool.syncAll();
          expect(fs.statSync(file).size).toBe(size);
          expect(fs.readFileSync(file).equals(want)).toBe(true);
          expect(w.result().outSha256).toBe(sha(want));
          expect(w.result().outSize).toBe(size);
        }
      }
      // Damaged data fails the same way as buffered, and the pool goes on.
      const packed = zstdCompressBuffer(mixed, 1);
      const damaged = Buffer.from(packed);
      damaged[Math.floor(damaged.length / 2)]! ^= 0xff;
      await expect(pipeline(Readable.from([damaged]), await pool.writeFile(path.join(dir, 'direct-bad'), 0o600, 'decompress', undefined, 'sha256', true)))
        .rejects.toBeInstanceOf(ZstdDataError);
      await expect(pipeline(Readable.from([packed.subarray(0, packed.length - 5)]), await pool.writeFile(path.join(dir, 'direct-cut'), 0o600, 'decompress', undefined, 'sha256', true)))
        .rejects.toBeInstanceOf(ZstdDataError);
      const again = await pool.writeFile(path.join(dir, 'direct-again'), 0o600, 'decompress', undefined, 'sha256', true);
      await pipeline(Readable.from([packed]), again);
      expect(fs.readFileSync(path.join(dir, 'direct-again')).equals(mixed)).toBe(true);
    });

    it('goes on buffered, through a second descriptor, when a direct write fails with EINVAL after the open took O_DIRECT', async () => {
      // The workers of a new pool (started at its first job, with a copy of the environment) see
      // the injected failure: direct writes from 2 MiB on fail.
      process.env.OPENRDS_TEST_DIRECT_WRITE_EINVAL_AT = String(2 * 1024 * 1024);
      const refusing = new FilterPool(1);
      try {
        const want = Buffer.concat([randomBytes(3 * 1024 * 1024), Buffer.alloc(2 * 1024 * 1024 + 123, 9)]);
        for (const mode of ['decompress', 'hash'] as const) {
          const file = path.join(dir, `einval-${mode}`);
          const w = await refusing.writeFile(file, 0o640, mode, 1_700_000_000, 'sha256', true);
          if (fs.statfsSync && fs.statfsSync(dir).type === 0xef53) expect(w.direct).toBe(true);
          const input = mode === 'decompress' ? zstdCompressBuffer(want, 1) : want;
          await pipeline(Readable.from(Array.from({ length: Math.ceil(input.length / 300_000) }, (_, i) => input.subarray(i * 300_000, (i + 1) * 300_000))), w);
          await refusing.syncAll();
          // The tail was written rounded up through the buffered descriptor, then cut to size.
          expect(fs.statSync(file).size).toBe(want.length);
          expect(fs.readFileSync(file).equals(want)).toBe(true);
          expect(fs.statSync(file).mode & 0o777).toBe(0o640);
          expect(w.result()).toMatchObject({ outSha256: sha(want), outSize: want.length });
        }
      } finally {
        delete process.env.OPENRDS_TEST_DIRECT_WRITE_EINVAL_AT;
        await refusing.close();
      }
    });

    it('reads small files in a batch, and writes a batch stopping at the damaged one', async () => {
      const small = [Buffer.from('a'.repeat(9000)), randomBytes(3000), Buffer.alloc(0)];
      small.forEach((b, i) => fs.writeFileSync(path.join(dir, `s${i}`), b));
      const files = [{ path: path.join(dir, 's0'), size: 9000 }, { path: path.join(dir, 'missing'), size: 5 }, { path: path.join(dir, 's1'), size: 3000 },
        { path: path.join(dir, 's2'), size: 0 }];
      const got = await pool.readSmall(files, 'compress', 3);
      expect(got.map((g) => g.missing)).toEqual([false, true, false, false]);
      expect(got[0]!.sha256).toBe(sha(small[0]!));
      expect(got[0]!.repoSize).toBeLessThan(200);
      expect(zstdDecompressBuffer(got[2]!.repoData, 3000).equals(small[1]!)).toBe(true);
      expect(got[2]!.repoSha256).toBe(sha(got[2]!.repoData));
      const plain = await pool.readSmall([files[0]!], 'hash');
      expect(plain[0]!.repoData.equals(small[0]!)).toBe(true);
      // A restore run: written with mode and times, and the run stops at the first bad file.
      const out = (n: string): string => path.join(dir, n);
      const spec = (name: string, i: number, repoData: Buffer) => ({ path: out(name), data: repoData, size: small[i]!.length, sha256: sha(small[i]!), mode: 0o640, mtime: 1_600_000_000, compressed: true });
      expect(await pool.writeSmall([spec('o0', 0, got[0]!.repoData), spec('o1', 1, got[2]!.repoData),
        { ...spec('o2', 1, small[1]!), compressed: false }])).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
      await pool.syncAll();
      expect(fs.readFileSync(out('o1')).equals(small[1]!)).toBe(true);
      expect(fs.readFileSync(out('o2')).equals(small[1]!)).toBe(true);
      expect(fs.statSync(out('o0')).mode & 0o777).toBe(0o640);
      expect(fs.statSync(out('o0')).mtimeMs).toBe(1_600_000_000_000);
      const bad = Buffer.from(got[2]!.repoData);
      bad[bad.length - 2]! ^= 0xff;
      const r = await pool.writeSmall([spec('p0', 0, got[0]!.repoData), spec('p1', 1, bad), spec('p2', 1, got[2]!.repoData)]);
      expect(r).toEqual([{ ok: true }, { corrupt: expect.any(String) }]);
      expect(fs.existsSync(out('p1'))).toBe(false);
      expect(fs.existsSync(out('p2'))).toBe(false);
      expect(await pool.writeSmall([{ ...spec('q0', 1, got[2]!.repoData), size: 2999 }])).toEqual([{ corrupt: expect.stringContaining('more than the expected 2999 bytes') }]);
      expect(await pool.writeSmall([{ ...spec('q1', 1, got[2]!.repoData), sha256: sha(Buffer.from('x')) }])).toEqual([{ size: 3000, sha256: sha(small[1]!) }]);
      expect(await pool.writeSmall([spec('no/such/dir', 1, got[2]!.repoData)])).toEqual([{ error: expect.stringContaining('ENOENT'), errno: 'ENOENT' }]);
      await pool.syncAll();
      // syncNow (a fetched WAL segment): synced and closed before the reply, nothing left for syncAll.
      expect(await pool.writeSmall([{ ...spec('w0', 1, got[2]!.repoData), syncNow: true }])).toEqual([{ ok: true }]);
      expect(fs.readFileSync(out('w0')).equals(small[1]!)).toBe(true);
      expect(fs.statSync(out('w0')).mode & 0o777).toBe(0o640);
      await pool.syncAll();
    });

    it('checks the files of a delta restore in place: size and sha256 (size and mtime with force), fixing mode and mtime of the ones kept', async () => {
      const content = randomBytes(3 * 1024 * 1024 + 17);
      const f = (n: string): string => path.join(dir, `d-${n}`);
      fs.writeFileSync(f('same'), content, { mode: 0o600 });
      fs.writeFileSync(f('changed'), Buffer.concat([content.subarray(1), Buffer.from('x')]));
      fs.writeFileSync(f('short'), content.subarray(1));
      fs.writeFileSync(f('empty'), '');
      fs.mkdirSync(f('dir'), { recursive: true });
      const spec = (n: string, extra: Partial<PoolDeltaFile> = {}): PoolDeltaFile => ({
        path: f(n), size: content.length, sha256: sha(content), mtime: 1_600_000_000, mode: 0o640, force: false, emptySame: false, ...extra,
      });
      expect(await pool.deltaCheck([spec('same'), spec('changed'), spec('short'), spec('gone'), spec('dir'),
        spec('empty', { size: 0, emptySame: true }), spec('empty', { size: 0, emptySame: false })])).toEqual([true, false, false, false, false, true, false]);
      // Kept: mode and mtime now as in the backup.
      expect(fs.statSync(f('same')).mode & 0o777).toBe(0o640);
      expect(fs.statSync(f('same')).mtimeMs).toBe(1_600_000_000_000);
      // force: size and mtime decide, the content is not read.
      expect(await pool.deltaCheck([spec('changed', { force: true, mtime: Math.floor(fs.statSync(f('changed')).mtimeMs / 1000) }), spec('changed', { force: true })]))
        .toEqual([true, false]);
      // Files from a MiB on are read with O_DIRECT: whole MiBs (the end found by a read of nothing),
      // a dirty page cache written just before (the kernel writes it back first), blake3 too.
      const mib2 = content.subarray(0, 2 * 1024 * 1024);
      fs.writeFileSync(f('2m'), mib2);
      expect(await pool.deltaCheck([{ ...spec('2m'), size: mib2.length, sha256: sha(mib2) }, { ...spec('2m'), size: mib2.length, sha256: checksumOf('blake3', mib2) },
        { ...spec('2m'), size: mib2.length, sha256: sha(content.subarray(1, 2 * 1024 * 1024 + 1)) }])).toEqual([true, true, false]);
    });

    it('hashes with blake3 where asked: reads, small batches, writes and delta checks each with the type of the checksum they are given', async () => {
      const b3 = (b: Buffer): string => checksumOf('blake3', b);
      const file = path.join(dir, 'b3');
      fs.writeFileSync(file, data);
      expect(await pool.hashFile(file, 'blake3')).toEqual({ sha256: b3(data), size: data.length });
      const z = (await pool.readFile(file, data.length, 'compress', 1, 'blake3'))!;
      const packed = await collect(z);
      // The repo bytes are hashed with the same type: the repo-server checks uploads with the job's type.
      expect(z.result()).toEqual({ inSha256: b3(data), inSize: data.length, outSha256: b3(packed), outSize: packed.length });
      const plain = (await pool.readFile(file, data.length, 'hash', 1, 'blake3'))!;
      await collect(plain);
      expect(plain.result().outSha256).toBe(b3(data));
      const got = await pool.readSmall([{ path: file, size: 5000 }], 'compress', 1, 'blake3');
      expect(got[0]!.sha256).toBe(b3(data.subarray(0, 5000)));
      expect(got[0]!.repoSha256).toBe(b3(got[0]!.repoData));
      // Restore: the writer hashes the content with the type of the manifest's value.
      const w = await pool.writeFile(path.join(dir, 'b3-back'), 0o600, 'decompress', 1_600_000_000, 'blake3');
      await pipeline(Readable.from([packed]), w);
      expect(w.result().outSha256).toBe(b3(data));
      const small = data.subarray(0, 5000);
      const spec = { path: path.join(dir, 'b3-small'), data: got[0]!.repoData, size: 5000, sha256: b3(small), mode: 0o600, mtime: 1_600_000_000, compressed: true };
      expect(await pool.writeSmall([spec, { ...spec, path: path.join(dir, 'b3-small-2'), sha256: sha(small) }])).toEqual([{ ok: true }, { ok: true }]);
      expect(await pool.writeSmall([{ ...spec, sha256: b3(Buffer.from('other')) }])).toEqual([{ size: 5000, sha256: b3(small) }]);
      await pool.syncAll();
      const delta = (sha256: string): PoolDeltaFile => ({ path: file, size: data.length, sha256, mtime: 1_600_000_000, mode: 0o600, force: false, emptySame: false });
      expect(await pool.deltaCheck([delta(b3(data)), delta(sha(data)), delta(b3(data.subarray(1))), delta(sha(data.subarray(1)))]))
        .toEqual([true, true, false, false]);
    });

    it('a limited view uses that many workers of the pool', async () => {
      const fresh = new FilterPool(2);
      const workers = (p: FilterPool): number => (p as unknown as { workers: unknown[] }).workers.length;
      try {
        const one = fresh.limited(1);
        await Promise.all([0, 1, 2].map(() => one.hashFile(path.join(dir, 'h'))));
        expect(workers(fresh)).toBe(1);
        // The pool itself grows to its size when calls overlap; the view still sees the shared list.
        await Promise.all([0, 1, 2].map(() => fresh.hashFile(path.join(dir, 'h'))));
        expect(workers(fresh)).toBe(2);
        expect(workers(one)).toBe(2);
      } finally {
        await fresh.close();
      }
    });

    it('stops a worker that sits idle, never one with a stream open, and starts new ones for later work', async () => {
      const fresh = new FilterPool(2);
      const idle = FilterPool.idleMs;
      FilterPool.idleMs = 300;
      const until = async (what: () => boolean): Promise<void> => {
        for (const end = Date.now() + 10_000; !what();) {
          if (Date.now() > end) throw new Error('timed out');
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      try {
        // A stream left open for several idle periods keeps its worker, and completes afterwards.
        const t = fresh.transform('compress', 3);
        const parts: Buffer[] = [];
        const done = pipeline(t, new Writable({ write: (c: Buffer, _e, cb) => { parts.push(c); cb(); } }));
        t.write(chunks[0]);
        await fresh.hashFile(path.join(dir, 'h'));
        expect(fresh.running).toBe(2);
        // The other worker (the hash) goes; the stream's stays.
        await until(() => fresh.running === 1);
        await new Promise((r) => setTimeout(r, 1500));
        expect(fresh.running).toBe(1);
        t.end(chunks[1]);
        await done;
        expect(zstdDecompressBuffer(Buffer.concat(parts), 2 * 1024 * 1024).equals(Buffer.concat(chunks.slice(0, 2)))).toBe(true);
        expect(t.result().inSha256).toBe(sha(Buffer.concat(chunks.slice(0, 2))));
        await until(() => fresh.running === 0);
        // Later work starts a worker again, and its results are right.
        expect(await fresh.hashFile(path.join(dir, 'h'))).toEqual({ sha256: sha(fs.readFileSync(path.join(dir, 'h'))), size: fs.statSync(path.join(dir, 'h')).size });
        expect(fresh.running).toBe(1);
        // 0 (OPENRDS_WORKER_IDLE_MS=0): workers are kept.
        FilterPool.idleMs = 0;
        await new Promise((r) => setTimeout(r, 1500));
        expect(fresh.running).toBe(1);
      } finally {
        FilterPool.idleMs = idle;
        await fresh.close();
      }
    });

    it('keeps its most recently used worker up while kept warm (keepWarm), and stops it as idle afterwards', async () => {
      const fresh = new FilterPool(2);
      const idle = FilterPool.idleMs;
      FilterPool.idleMs = 300;
      try {
        await Promise.all([0, 1].map(() => fresh.hashFile(path.join(dir, 'h'))));
        expect(fresh.running).toBe(2);
        fresh.keepWarm(3000);
        // The other one goes as idle; the warm one stays past several idle periods.
        for (const end = Date.now() + 10_000; fresh.running > 1;) {
          if (Date.now() > end) throw new Error('timed out');
          await new Promise((r) => setTimeout(r, 50));
        }
        await new Promise((r) => setTimeout(r, 1500));
        expect(fresh.running).toBe(1);
        // Its work is still right, and once the warm time has passed it goes too.
        expect(await fresh.hashFile(path.join(dir, 'h'))).toEqual({ sha256: sha(fs.readFileSync(path.join(dir, 'h'))), size: fs.statSync(path.join(dir, 'h')).size });
        for (const end = Date.now() + 10_000; fresh.running > 0;) {
          if (Date.now() > end) throw new Error('timed out');
          await new Promise((r) => setTimeout(r, 50));
        }
        expect(fresh.running).toBe(0);
      } finally {
        FilterPool.idleMs = idle;
        await fresh.close();
      }
    });
  });
});

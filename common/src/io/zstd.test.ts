import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { OptionInvalidError } from '../error';
import { Sha256Filter, SizeFilter } from './filter';
import { ZstdCompressFilter, ZstdDataError, ZstdDecompressFilter, zstdCompressBuffer, zstdDecompressBuffer } from './zstd';

const MiB = 1024 * 1024;

/** Mixed data made lazily, 1 MiB at a time: text, random bytes and zeros. */
function* mixedData(mib: number): Generator<Buffer> {
  const zeros = Buffer.alloc(MiB);
  for (let i = 0; i < mib; i++) {
    if (i % 3 === 0) yield Buffer.from(`row ${i} of a table with some text `.repeat(MiB / 32).slice(0, MiB));
    else if (i % 3 === 1) yield randomBytes(MiB);
    else yield zeros;
  }
}

function sinkCollect(chunks: Buffer[]): Writable {
  return new Writable({ write: (c: Buffer, _e, cb) => { chunks.push(c); cb(); } });
}

async function zstdCompress(data: Buffer, level = 3): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from([data]), new ZstdCompressFilter({ level }).stream, sinkCollect(out));
  return Buffer.concat(out);
}

async function zstdDecompress(data: Buffer): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from([data]), new ZstdDecompressFilter().stream, sinkCollect(out));
  return Buffer.concat(out);
}

function hasZstdCli(): boolean {
  try { execFileSync('zstd', ['--version']); return true; } catch { return false; }
}

describe('zstd filters', () => {
  it('round-trip 40 MB of mixed data from a generator with memory staying flat', async () => {
    const compress = new ZstdCompressFilter({ level: 3 }), decompress = new ZstdDecompressFilter();
    const inSha = new Sha256Filter(), outSha = new Sha256Filter(), packedSize = new SizeFilter(), outSize = new SizeFilter();
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore, queuedPeak = 0;
    await pipeline([Readable.from(mixedData(40)), inSha.stream, compress.stream, packedSize.stream, decompress.stream,
      outSha.stream, outSize.stream,
      new Writable({
        highWaterMark: MiB,
        write: (_c, _e, cb) => {
          rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
          queuedPeak = Math.max(queuedPeak, compress.stream.readableLength + decompress.stream.readableLength);
          setImmediate(cb);
        },
      })]);
    expect(outSha.result()).toBe(inSha.result());
    expect(outSize.result()).toBe(40 * MiB);
    expect(packedSize.result()).toBeLessThan(20 * MiB);
    // Backpressure holds: neither transform queues more than a few of its output buffers.
    expect(queuedPeak).toBeLessThan(2 * MiB);
    expect(rssPeak - rssBefore).toBeLessThan(64 * MiB);
  });

  it('produce compressed output while input is still coming, not only at the end', async () => {
    const compress = new ZstdCompressFilter({ level: 1 });
    let received = 0;
    const done = pipeline(compress.stream, new Writable({ write: (c: Buffer, _e, cb) => { received += c.length; cb(); } }));
    for (let i = 0; i < 8; i++) {
      if (!compress.stream.write(randomBytes(MiB))) await new Promise((r) => compress.stream.once('drain', r));
    }
    await new Promise((r) => setImmediate(r));
    expect(received).toBeGreaterThan(6 * MiB);
    compress.stream.end();
    await done;
  });

  it('keep a small frame that expands hugely from landing in memory: the slow reader sets the pace', async () => {
    // 256 MiB of zeros compress to a few KiB; decompressing must not push it all at once.
    const zeros = Buffer.alloc(MiB);
    const packed: Buffer[] = [];
    await pipeline(Readable.from((function* () { for (let i = 0; i < 256; i++) yield zeros; })()),
      new ZstdCompressFilter({ level: 1 }).stream, sinkCollect(packed));
    expect(Buffer.concat(packed).length).toBeLessThan(256 * 1024);
    const decompress = new ZstdDecompressFilter();
    let queuedPeak = 0, total = 0;
    await pipeline(Readable.from([Buffer.concat(packed)]), decompress.stream, new Writable({
      write: (c: Buffer, _e, cb) => {
        total += c.length;
        queuedPeak = Math.max(queuedPeak, decompress.stream.readableLength);
        setImmediate(cb);
      },
    }));
    expect(total).toBe(256 * MiB);
    expect(queuedPeak).toBeLessThanOrEqual(MiB);
  });

  it('keep the event loop turning while compressing one huge buffer', async () => {
    // Words in random order: slow enough to compress at level 9 that blocking would show.
    const words = ['page', 'tuple', 'xlog', 'vacuum', 'index', 'heap', 'toast', 'commit', 'abort', 'lsn', 'checkpoint', 'relation'];
    const pick = randomBytes(2 * 1024 * 1024);
    const text = Buffer.from(Array.from(pick, (b) => words[b % words.length]).join(' '));
    let last = Date.now(), maxGap = 0, ticks = 0;
    const timer = setInterval(() => { const now = Date.now(); maxGap = Math.max(maxGap, now - last); last = now; ticks++; }, 2);
    const started = Date.now();
    try {
      const packed = await zstdCompress(text, 9);
      expect(packed.length).toBeLessThan(text.length / 2);
    } finally {
      clearInterval(timer);
    }
    maxGap = Math.max(maxGap, Date.now() - last);
    const elapsed = Date.now() - started;
    expect(ticks).toBeGreaterThan(0);
    // Slices yield every ~10 ms; allow for a slow machine, but far below the whole job's time.
    expect(maxGap).toBeLessThan(Math.max(100, elapsed / 3));
  });

  it('write real zstd frames that the zstd command line reads, and read what it writes', async () => {
    if (!hasZstdCli()) {
      // Without the CLI only our own round trip can be checked.
      const text = Buffer.from('openrds '.repeat(100000));
      expect((await zstdDecompress(await zstdCompress(text))).equals(text)).toBe(true);
      return;
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zstd-'));
    try {
      const data = Buffer.concat([...mixedData(3)]);
      fs.writeFileSync(path.join(dir, 'ours.zst'), await zstdCompress(data, 5));
      execFileSync('zstd', ['-q', '-t', path.join(dir, 'ours.zst')]);   // checks the frame checksum too
      execFileSync('zstd', ['-q', '-d', path.join(dir, 'ours.zst'), '-o', path.join(dir, 'ours')]);
      expect(createHash('sha256').update(fs.readFileSync(path.join(dir, 'ours'))).digest('hex'))
        .toBe(createHash('sha256').update(data).digest('hex'));

      fs.writeFileSync(path.join(dir, 'theirs'), data);
      execFileSync('zstd', ['-q', '-19', path.join(dir, 'theirs'), '-o', path.join(dir, 'theirs.zst')]);
      expect((await zstdDecompress(fs.readFileSync(path.join(dir, 'theirs.zst')))).equals(data)).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('compress empty input into a valid frame that decompresses to nothing', async () => {
    const packed = await zstdCompress(Buffer.alloc(0));
    expect(packed.length).toBeGreaterThan(0);
    expect((await zstdDecompress(packed)).length).toBe(0);
  });

  it('read several concatenated frames as one stream', async () => {
    const a = Buffer.from('first frame '), b = Buffer.from('second frame');
    const packed = Buffer.concat([await zstdCompress(a), await zstdCompress(b)]);
    expect((await zstdDecompress(packed)).toString()).toBe('first frame second frame');
  });

  it('fail with ZstdDataError on damaged data instead of returning garbage', async () => {
    const packed = await zstdCompress(randomBytes(256 * 1024));
    packed[Math.floor(packed.length / 2)] = packed[Math.floor(packed.length / 2)]! ^ 0xff;
    const err = await zstdDecompress(packed).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ZstdDataError);
    expect((err as Error).message).toMatch(/^zstd data is damaged: /);
    // Callers tell decode errors from disk and network errors by the missing code.
    expect((err as { code?: unknown }).code).toBeUndefined();
  });

  it('fail with ZstdDataError on truncated data', async () => {
    const packed = await zstdCompress(randomBytes(300 * 1024));
    await expect(zstdDecompress(packed.subarray(0, packed.length - 10)))
      .rejects.toThrow(new ZstdDataError('zstd data ends in the middle of a frame: it is truncated'));
  });

  it('fail with ZstdDataError on empty input and on bytes that are not zstd', async () => {
    await expect(zstdDecompress(Buffer.alloc(0))).rejects.toThrow(new ZstdDataError('zstd data is empty: expected at least one frame'));
    await expect(zstdDecompress(Buffer.from('not zstd at all'))).rejects.toThrow(ZstdDataError);
  });

  it('refuse a level outside 1..19', () => {
    expect(() => new ZstdCompressFilter({ level: 0 })).toThrow(OptionInvalidError);
    expect(() => new ZstdCompressFilter({ level: 20 })).toThrow("invalid zstd compress level '20'");
    expect(new ZstdCompressFilter().name).toBe('zstd-compress');
  });

  it('stop cleanly when the pipeline is aborted mid-stream', async () => {
    const ac = new AbortController();
    const source = Readable.from((function* () { for (let i = 0; i < 1000; i++) yield randomBytes(64 * 1024); })());
    let seen = 0;
    const sink = new Writable({ write: (c: Buffer, _e, cb) => { seen += c.length; if (seen > MiB) ac.abort(); cb(); } });
    await expect(pipeline([source, new ZstdCompressFilter().stream, new ZstdDecompressFilter().stream, sink], { signal: ac.signal }))
      .rejects.toMatchObject({ name: 'AbortError' });
  });
});

describe('whole-buffer zstd (small files)', () => {
  const text = Buffer.from('a small relation file '.repeat(400));

  it('round-trips, and reads frames made by the streaming compressor too', async () => {
    const packed = zstdCompressBuffer(text, 3);
    expect(packed.length).toBeLessThan(text.length);
    expect(zstdDecompressBuffer(packed, text.length).equals(text)).toBe(true);
    const streamed = await collect(Readable.from([text]).pipe(new ZstdCompressFilter({ level: 1 }).stream));
    expect(zstdDecompressBuffer(streamed, text.length).equals(text)).toBe(true);
    expect(zstdDecompressBuffer(zstdCompressBuffer(Buffer.alloc(0)), 0).length).toBe(0);
  });

  it('refuses content larger than expected, truncated or damaged frames, and no frame at all', () => {
    const packed = zstdCompressBuffer(text, 3);
    expect(() => zstdDecompressBuffer(packed, text.length - 1)).toThrow(ZstdDataError);
    expect(() => zstdDecompressBuffer(packed.subarray(0, packed.length - 3), text.length)).toThrow(ZstdDataError);
    const damaged = Buffer.from(packed);
    damaged[damaged.length - 2] ^= 0xff;
    expect(() => zstdDecompressBuffer(damaged, text.length)).toThrow(ZstdDataError);
    expect(() => zstdDecompressBuffer(Buffer.alloc(0), 0)).toThrow(ZstdDataError);
  });

  it('reuses pooled contexts without leaking one frame into the next', () => {
    for (let i = 0; i < 50; i++) {
      const data = Buffer.from(`file ${i} `.repeat(i + 1));
      expect(zstdDecompressBuffer(zstdCompressBuffer(data, 1 + (i % 3)), data.length).equals(data)).toBe(true);
    }
  });
});

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

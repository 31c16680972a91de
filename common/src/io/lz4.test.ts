import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Lz4CompressFilter, Lz4DecompressFilter, lz4CompressBuffer, lz4DecompressBuffer, lz4FrameLength } from './lz4';
import { ZstdDataError } from './zstd';
import { compressTypeOf, decompressBuffer, decompressFilters, isDecodeError } from './compress';

const MiB = 1024 * 1024;
/** 3.5 MiB of text, random bytes and zeros: several frames, the last one partial. */
const data = Buffer.concat([Buffer.from('row of a table with some text '.repeat(40_000)), randomBytes(MiB), Buffer.alloc(MiB + 12345)]);

async function through(stream: NodeJS.ReadWriteStream, chunks: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from(chunks), stream, new Writable({ write: (c: Buffer, _e, cb) => { out.push(c); cb(); } }));
  return Buffer.concat(out);
}

/** Splits a buffer into pieces of odd sizes, so frames and their headers straddle chunks. */
function pieces(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let o = 0; o < buf.length; o += size) out.push(buf.subarray(o, o + size));
  return out;
}

function framesOf(buf: Buffer): number {
  let n = 0;
  for (let rest = buf; rest.length > 0; n++) rest = rest.subarray(lz4FrameLength(rest)!);
  return n;
}

describe('lz4 (frame format)', () => {
  let dir: string;
  beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'openrds-lz4-')); });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('compresses a stream into frames of a MiB that the lz4 tool reads, and reads them back from any chunking', async () => {
    const packed = await through(new Lz4CompressFilter().stream, pieces(data, 300_000));
    expect(framesOf(packed)).toBe(4);
    expect(packed.length).toBeLessThan(data.length * 0.5);
    expect((await through(new Lz4DecompressFilter().stream, pieces(packed, 777))).equals(data)).toBe(true);
    expect(lz4DecompressBuffer(packed, data.length).equals(data)).toBe(true);
    expect(lz4CompressBuffer(data).equals(packed)).toBe(true);
    // The real lz4 tool decodes the run of frames as one stream.
    const file = path.join(dir, 'ours.lz4');
    fs.writeFileSync(file, packed);
    expect(execFileSync('lz4', ['-dc', file], { maxBuffer: 64 * MiB }).equals(data)).toBe(true);
  });

  it('reads what the lz4 tool writes (content checksum, linked blocks, skippable frames)', async () => {
    const file = path.join(dir, 'plain');
    fs.writeFileSync(file, data);
    for (const args of [['-1'], ['-9', '--content-size', '-BD'], ['-B4', '--no-frame-crc']]) {
      const packed = execFileSync('lz4', [...args, '-c', file], { maxBuffer: 64 * MiB });
      expect((await through(new Lz4DecompressFilter().stream, pieces(packed, 65_536))).equals(data)).toBe(true);
    }
    const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]), lz4CompressBuffer(Buffer.from('after'))]);
    expect(lz4DecompressBuffer(skippable, 5).toString()).toBe('after');
  });

  it('writes one empty frame for empty content, and refuses input with no frame', async () => {
    const empty = await through(new Lz4CompressFilter().stream, []);
    expect(framesOf(empty)).toBe(1);
    expect(lz4DecompressBuffer(empty, 0).length).toBe(0);
    await expect(through(new Lz4DecompressFilter().stream, [])).rejects.toThrow(new ZstdDataError('lz4 data is damaged: no frame at all'));
    expect(() => lz4DecompressBuffer(Buffer.alloc(0), 0)).toThrow(ZstdDataError);
  });

  it('fails with a decode error on truncated, foreign or damaged data', async () => {
    const packed = lz4CompressBuffer(data);
    await expect(through(new Lz4DecompressFilter().stream, [packed.subarray(0, packed.length - 3)])).rejects
      .toThrow(new ZstdDataError('lz4 data is damaged: it ends in the middle of a frame: it is truncated'));
    await expect(through(new Lz4DecompressFilter().stream, [Buffer.from('not lz4 at all')])).rejects.toThrow(/not an lz4 frame/);
    expect(() => lz4DecompressBuffer(packed, data.length - 1)).toThrow(/more than the expected/);
    expect(() => lz4DecompressBuffer(packed, data.length + 1)).toThrow(/expected/);
    // A damaged block size or block: a decode error, or content whose sha256 differs (ours carry no checksum).
    const damaged = Buffer.from(packed);
    damaged[9] = 0xff;
    const err = await through(new Lz4DecompressFilter().stream, [damaged]).catch((e: unknown) => e);
    expect(Buffer.isBuffer(err) ? !err.equals(data) : err instanceof ZstdDataError && isDecodeError(err)).toBe(true);
  });

  it('is a compress type like the others: extension, filters, whole buffers', async () => {
    expect(compressTypeOf('000000010000000000000001-abc.lz4')).toBe('lz4');
    const packed = lz4CompressBuffer(data);
    expect(decompressBuffer('lz4', packed, data.length).equals(data)).toBe(true);
    expect((await through(decompressFilters('lz4')[0]!.stream, [packed])).equals(data)).toBe(true);
  });
});

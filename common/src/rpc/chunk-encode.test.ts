import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import { CompressionFilter } from '@grpc/grpc-js/build/src/compression-filter';
import { FilterPool } from '../io/filter-pool';
import { CHUNK_HEADROOM, chunkHeadroomMark, chunkMessageInPlace } from './chunk-encode';
import { PROTO_DIR, protoLoad } from './proto';

type Serialize = (msg: object) => Buffer;
type Deserialize = (b: Buffer) => unknown;

// protobufjs's own encoding of the method, loaded apart from protoLoad (which wraps it).
const plain = protoLoader.loadSync('openrds/v1/openrds.proto', { includeDirs: [PROTO_DIR], longs: String, enums: String, defaults: true, oneofs: true });
const method = (plain['openrds.v1.AgentGateway'] as Record<string, { requestSerialize: Serialize; requestDeserialize: Deserialize }>).PutBackupFile!;
const wrapped = (protoLoad().AgentGateway as unknown as { service: Record<string, { requestSerialize: Serialize }> }).service.PutBackupFile!.requestSerialize;

/** Bytes with CHUNK_HEADROOM free bytes before them in a buffer of their own. */
function withHeadroom(data: Buffer): Buffer {
  const own = Buffer.allocUnsafeSlow(CHUNK_HEADROOM + data.length);
  own.fill(0xee, 0, CHUNK_HEADROOM);
  data.copy(own, CHUNK_HEADROOM);
  return own.subarray(CHUNK_HEADROOM);
}

describe('PutFileMessage chunks encoded in place', () => {
  const send = async (message: Buffer): Promise<Buffer> => (await new CompressionFilter({}, {}).sendMessage(Promise.resolve({ message }))).message;
  const frameOf = (message: Buffer): Buffer => Buffer.concat([Buffer.from([0, ...[24, 16, 8, 0].map((b) => (message.length >>> b) & 0xff)]), message]);
  it.each([1, 127, 128, 300, 16_383, 16_384, 2_097_151, 2_097_152, 1024 * 1024, 2 * 1024 * 1024 + 5])(
    'gives the bytes protobufjs gives, in the chunk\'s own memory (%i bytes)', (n) => {
      const data = withHeadroom(randomBytes(n));
      chunkHeadroomMark(data);
      const msg = { chunk: { data } };
      const got = wrapped(msg);
      expect(got.equals(method.requestSerialize(msg))).toBe(true);
      expect(got.buffer).toBe(data.buffer);
      expect(got.byteOffset + got.length).toBe(data.byteOffset + data.length);
      expect((method.requestDeserialize(got) as { chunk: { data: Buffer } }).chunk.data.equals(data)).toBe(true);
    });

  it('encodes other messages, and chunks without marked headroom, as protobufjs does (a copy)', () => {
    const pooled = Buffer.from('x'.repeat(100));
    const unmarked = withHeadroom(randomBytes(5000));
    const marked = withHeadroom(randomBytes(5000));
    chunkHeadroomMark(marked);
    const cases: object[] = [
      { chunk: { data: pooled } },
      { chunk: { data: unmarked } },
      // Past the start of a marked buffer (the second piece of a split chunk): no room before it.
      { chunk: { data: marked.subarray(10) } },
      { chunk: { data: Buffer.alloc(0) } },
      { header: { jobId: 'j', name: 'pg_data/base/1/2', compressType: 'zst' } },
      { trailer: { size: '10', sha256: 'ab', repoSize: '5', repoSha256: 'cd', missing: false, mtime: '0', pageChecksumErrors: [] } },
    ];
    for (const msg of cases) {
      const got = wrapped(msg);
      expect(got.equals(method.requestSerialize(msg))).toBe(true);
    }
    expect(chunkMessageInPlace(pooled)).toBeUndefined();
    expect(chunkMessageInPlace(unmarked)).toBeUndefined();
    expect(wrapped({ chunk: { data: unmarked } }).buffer).not.toBe(unmarked.buffer);
    // The bytes before an unmarked buffer are left alone.
    expect(Buffer.from(unmarked.buffer, 0, CHUNK_HEADROOM).every((b) => b === 0xee)).toBe(true);
  });

  it('is framed for the wire in the same memory by grpc-js (others are copied into their frames, as grpc-js does)', async () => {
    for (const n of [1, 300, 1024 * 1024]) {
      const data = withHeadroom(randomBytes(n));
      chunkHeadroomMark(data);
      const message = wrapped({ chunk: { data } });
      const expected = frameOf(Buffer.from(message));
      const framed = await send(message);
      expect(framed.equals(expected)).toBe(true);
      expect(framed.buffer).toBe(data.buffer);
      expect(framed.byteOffset + framed.length).toBe(data.byteOffset + data.length);
      // Framed once: the same message again is copied (its header room is used).
      const again = await send(message);
      expect(again.equals(expected)).toBe(true);
      expect(again.buffer).not.toBe(data.buffer);
    }
    const header = wrapped({ header: { jobId: 'j', name: 'pg_data/base/1/2', compressType: 'zst' } });
    const framedHeader = await send(header);
    expect(framedHeader.equals(frameOf(header))).toBe(true);
    // A copy: not the header's memory with a frame header before it (small buffers share Buffer's pool).
    expect(framedHeader.buffer === header.buffer && framedHeader.byteOffset + 5 === header.byteOffset).toBe(false);
  });

  it('applies to what a worker reads and compresses (a backup file\'s chunks, a WAL file\'s frames): each output comes marked, and decodes to itself', async () => {
    const pool = new FilterPool(1);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chunk-'));
    try {
      const file = path.join(dir, 'f');
      fs.writeFileSync(file, Buffer.concat([randomBytes(1024 * 1024), Buffer.alloc(2 * 1024 * 1024, 7)]));
      for (const mode of ['compress', 'hash'] as const) {
        const reader = (await pool.readFile(file, 3 * 1024 * 1024, mode, 1))!;
        let chunks = 0, inPlace = 0;
        for await (const out of reader as AsyncIterable<Buffer>) {
          chunks++;
          const encoded = chunkMessageInPlace(out);
          if (!encoded) continue;
          inPlace++;
          expect((method.requestDeserialize(encoded) as { chunk: { data: Buffer } }).chunk.data.equals(out)).toBe(true);
        }
        expect(chunks).toBeGreaterThan(0);
        expect(inPlace).toBe(chunks);
      }
      // A WAL file compressed whole: each frame is an ArchivePushMessage encoded in place.
      const push = (plain['openrds.v1.AgentGateway'] as Record<string, { requestSerialize: Serialize; requestDeserialize: Deserialize }>).ArchivePush!;
      const pushWrapped = (protoLoad().AgentGateway as unknown as { service: Record<string, { requestSerialize: Serialize }> }).service.ArchivePush!.requestSerialize;
      const whole = (await pool.compressFile(file, 3, 4 * 1024 * 1024))!;
      expect(whole.frames.length).toBe(3);
      for (const frame of whole.frames) {
        // In a slot of the shared frame slab: encoded, then framed by grpc-js, in place, whichever
        // view of its bytes reaches the encoder (a stream may hand on another).
        expect(frame.buffer).toBeInstanceOf(SharedArrayBuffer);
        const got = pushWrapped({ chunk: { data: Buffer.from(frame.buffer, frame.byteOffset, frame.length) } });
        expect(got.buffer).toBe(frame.buffer);
        expect(got.equals(push.requestSerialize({ chunk: { data: frame } }))).toBe(true);
        expect((push.requestDeserialize(got) as { chunk: { data: Buffer } }).chunk.data.equals(frame)).toBe(true);
        const expected = frameOf(Buffer.from(got));
        const framed = await send(got);
        expect(framed.equals(expected)).toBe(true);
        expect([framed.buffer, framed.byteOffset + framed.length]).toEqual([frame.buffer, frame.byteOffset + frame.length]);
      }
      pool.framesRecycle(whole.frames);
    } finally {
      await pool.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

/*
 * A backup file's bytes leave the agent as PutFileMessage chunks. Encoded by protobufjs, each chunk
 * is copied into a new buffer, and grpc-js copies that again behind its 5-byte frame header: two
 * copies and two large allocations per MiB on the agent's main thread, whose external memory
 * starts V8's mark-compacts (20 per full backup of a 3 GB cluster). The worker threads that
 * compress the files leave CHUNK_HEADROOM free bytes before each output (filter-pool.ts), so a
 * chunk of such bytes is encoded in place: the protobuf header goes into that room and the
 * message is a view of the same memory.
 */

/**
 * Free bytes before a worker's output in its own ArrayBuffer: a chunk's protobuf header takes at
 * most 12, and gRPC's frame header 5 more before it (see grpcFrameInPlace).
 */
export const CHUNK_HEADROOM = 32;

/** gRPC's header before each message on the wire: a compressed flag and the length (big-endian). */
const GRPC_FRAME_HEADER = 5;

/**
 * Where an output starts with CHUNK_HEADROOM free bytes before it: offsets into each ArrayBuffer
 * (a worker's output in memory of its own, at CHUNK_HEADROOM; or the start of a slot of a slab
 * shared by several, see filter-pool.ts). By offset, not by view: the chunk that reaches the
 * encoder may be another view of the same bytes.
 */
const headroomedAt = new WeakMap<ArrayBufferLike, Set<number>>();
/** Messages chunkMessageInPlace made, with room for gRPC's frame header still free before them. */
const framable = new WeakSet<Buffer>();

/**
 * Marks the CHUNK_HEADROOM bytes before `b` as free, for `b` and any later output that starts at
 * the same offset of its ArrayBuffer. Only a worker's outputs placed so may be marked: Buffer's
 * shared pool hands out slices at any offset, with other bytes before them.
 */
export function chunkHeadroomMark(b: Uint8Array): void {
  if (b.byteOffset < CHUNK_HEADROOM) return;
  let at = headroomedAt.get(b.buffer);
  if (!at) headroomedAt.set(b.buffer, at = new Set());
  at.add(b.byteOffset);
}

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) { n = Math.floor(n / 0x80); len++; }
  return len;
}

function varintPut(b: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) { b[at++] = (n % 0x80) | 0x80; n = Math.floor(n / 0x80); }
  b[at++] = n;
  return at;
}

/**
 * The protobuf encoding of `PutFileMessage { chunk: DataChunk { data } }` (or ArchivePushMessage's,
 * the same bytes) as a view over `data`'s own memory, its header written into the headroom before
 * it; undefined when `data` has no marked headroom (or is empty: protobuf leaves an empty bytes
 * field out), and the caller encodes it. Field numbers: PutFileMessage.chunk and
 * ArchivePushMessage.chunk = 2, DataChunk.data = 1, all length-delimited.
 */
export function chunkMessageInPlace(data: Uint8Array): Buffer | undefined {
  const n = data.length;
  if (n === 0 || !headroomedAt.get(data.buffer)?.has(data.byteOffset)) return undefined;
  const inner = 1 + varintLength(n) + n;
  const head = 1 + varintLength(inner) + 1 + varintLength(n);
  const all = Buffer.from(data.buffer, data.byteOffset - head, head + n);
  let at = 0;
  all[at++] = 0x12;
  at = varintPut(all, at, inner);
  all[at++] = 0x0a;
  varintPut(all, at, n);
  framable.add(all);
  return all;
}

/**
 * A message chunkMessageInPlace made, framed for the wire in the same memory: gRPC's 5-byte
 * header (not compressed, the length) written before it. grpc-js copies each message it sends
 * into a new buffer behind that header (a fresh MiB per chunk, the agent's last copy of a backup
 * or WAL file's bytes on its main thread); installed by grpcFramingInPlace, it uses this instead.
 * Undefined for any other message (grpc-js copies it as usual); each message is framed once.
 */
export function grpcFrameInPlace(message: Buffer): Buffer | undefined {
  if (!framable.has(message) || message.byteOffset < GRPC_FRAME_HEADER) return undefined;
  framable.delete(message);
  const framed = Buffer.from(message.buffer, message.byteOffset - GRPC_FRAME_HEADER, message.length + GRPC_FRAME_HEADER);
  framed[0] = 0;
  framed.writeUInt32BE(message.length, 1);
  return framed;
}

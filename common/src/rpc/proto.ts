import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as path from 'node:path';
import type { ProtoGrpcType } from '../proto-gen/openrds';
import type { ArchivePushMessage } from '../proto-gen/openrds/v1/ArchivePushMessage';
import type { PutFileMessage } from '../proto-gen/openrds/v1/PutFileMessage';
import { CompressionFilter } from '@grpc/grpc-js/build/src/compression-filter';
import { chunkMessageInPlace, grpcFrameInPlace } from './chunk-encode';
import { log } from '../log';

/** Directory of the .proto files: <root>/proto, found from common/dist/rpc or common/src/rpc. */
export const PROTO_DIR = path.resolve(__dirname, '..', '..', '..', 'proto');

let loaded: ProtoGrpcType | undefined;

/** The openrds.v1 package, loaded once per process. */
export function protoLoad(): ProtoGrpcType['openrds']['v1'] {
  if (!loaded) {
    const def = protoLoader.loadSync('openrds/v1/openrds.proto', {
      includeDirs: [PROTO_DIR],
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    // A chunk a worker made (a backup file's, a pushed WAL file's frame) is encoded in place (see
    // chunk-encode.ts): both messages have the chunk as field 2, its bytes as field 1 of it.
    const gateway = def['openrds.v1.AgentGateway'] as Record<string, protoLoader.MethodDefinition<object, object>> | undefined;
    for (const method of [gateway?.PutBackupFile, gateway?.ArchivePush]) {
      if (!method) continue;
      const encode = method.requestSerialize;
      method.requestSerialize = (msg: object): Buffer => {
        const m = msg as PutFileMessage & ArchivePushMessage;
        const data = m.chunk && !m.header && !m.trailer ? m.chunk.data : undefined;
        return (data instanceof Uint8Array ? chunkMessageInPlace(data) : undefined) ?? encode(msg);
      };
    }
    grpcFramingInPlace();
    loaded = grpc.loadPackageDefinition(def) as unknown as ProtoGrpcType;
  }
  return loaded.openrds.v1;
}

type WriteMessage = (message: Buffer, compress: boolean) => Promise<Buffer>;

/**
 * Has grpc-js frame the messages chunkMessageInPlace made in their own memory (grpcFrameInPlace)
 * instead of copying each into a new buffer: its uncompressed ("identity") sender's writeMessage,
 * reached through a CompressionFilter's, is wrapped. grpc-js is pinned; a version whose sender
 * looks different is left alone (its messages are copied, as before).
 */
function grpcFramingInPlace(): void {
  try {
    const filter = new CompressionFilter({}, {}) as unknown as { sendCompression: object };
    const identity = Object.getPrototypeOf(filter.sendCompression) as { writeMessage?: WriteMessage; constructor: { name: string }; openrdsInPlace?: boolean };
    if (identity.openrdsInPlace) return;
    const original = identity.writeMessage;
    if (identity.constructor.name !== 'IdentityHandler' || typeof original !== 'function' || original.length !== 2) {
      log.detail('grpc-js frames messages its own way: chunks are copied into their frames');
      return;
    }
    identity.writeMessage = function writeMessage(this: unknown, message: Buffer, compress: boolean): Promise<Buffer> {
      const framed = grpcFrameInPlace(message);
      return framed ? Promise.resolve(framed) : original.call(this, message, compress);
    };
    identity.openrdsInPlace = true;
  } catch (err) {
    log.detail(`grpc-js frames messages its own way (${(err as Error).message}): chunks are copied into their frames`);
  }
}

/** Largest chunk of file bytes in one message. */
export const CHUNK_SIZE = 1024 * 1024;

/**
 * Channel options shared by every client and the server. The default HTTP/2 flow-control window
 * (64 KiB) caps a stream far below disk speed, so clients ask for a larger one.
 */
export const GRPC_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
  'grpc.keepalive_time_ms': 20_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc-node.flow_control_window': 16 * 1024 * 1024,
};

export const GRPC_SERVER_OPTIONS: grpc.ServerOptions = {
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.http2.min_ping_interval_without_data_ms': 5_000,
  'grpc.keepalive_time_ms': 20_000,
  'grpc.keepalive_timeout_ms': 10_000,
};

/** host:port for grpc-js, bracketing IPv6 literals. */
export function grpcAddress(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

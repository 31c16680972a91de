import * as grpc from '@grpc/grpc-js';
import type * as http2 from 'node:http2';
import { GRPC_CHANNEL_OPTIONS, GRPC_SERVER_OPTIONS } from './proto';
import { SERVER_WINDOW_BYTES, grpcServerSessionWindow, grpcServerStreamWindow } from './windows';

const raw = (b: Buffer): Buffer => b;
const service: grpc.ServiceDefinition = {
  Upload: { path: '/t.T/Upload', requestStream: true, responseStream: false, requestSerialize: raw, requestDeserialize: raw,
    responseSerialize: raw, responseDeserialize: raw, originalName: 'upload' },
};

async function upload(raise: boolean): Promise<{ bytes: number; sessions: http2.ServerHttp2Session[] }> {
  const server = new grpc.Server(GRPC_SERVER_OPTIONS);
  if (raise) expect(grpcServerStreamWindow(server)).toBe(true);
  let bytes = 0;
  server.addService(service, {
    Upload: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      call.on('data', (d: Buffer) => { bytes += d.length; });
      call.on('end', () => cb(null, Buffer.alloc(0)));
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  if (raise) expect(grpcServerSessionWindow(server)).toBe(true);
  const sessions: http2.ServerHttp2Session[] = [];
  for (const h2 of (server as unknown as { http2Servers: Map<http2.Http2Server, unknown> }).http2Servers.keys()) {
    h2.on('session', (s: http2.ServerHttp2Session) => sessions.push(s));
  }
  const Client = grpc.makeGenericClientConstructor(service, 'T');
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), GRPC_CHANNEL_OPTIONS);
  try {
    await new Promise<void>((resolve, reject) => {
      const call = (client as unknown as { upload: (cb: (e: Error | null) => void) => grpc.ClientWritableStream<Buffer> }).upload((e) => (e ? reject(e) : resolve()));
      const chunk = Buffer.alloc(1024 * 1024, 7);
      let n = 0;
      const write = (): void => {
        while (n < 32) { n++; if (!call.write(chunk)) { call.once('drain', write); return; } }
        call.end();
      };
      write();
    });
    // Checked while the session is open: Node's own view of the windows after real traffic.
    return { bytes, sessions };
  } finally {
    client.close();
    server.forceShutdown();
  }
}

describe('gRPC server receive windows', () => {
  it('announces a large stream window and raises the connection window of each session', async () => {
    const { bytes, sessions } = await upload(true);
    expect(bytes).toBe(32 * 1024 * 1024);
    expect(sessions.length).toBeGreaterThan(0);
    expect(sessions[0]!.localSettings.initialWindowSize).toBe(SERVER_WINDOW_BYTES);
  });

  it('keeps HTTP/2 defaults without the raise (what the raise changes)', async () => {
    const { sessions } = await upload(false);
    expect(sessions[0]!.localSettings.initialWindowSize).toBe(65535);
  });
});

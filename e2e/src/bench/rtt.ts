// Upload throughput of one gRPC client stream across an artificial round-trip time: the
// repo-server's raised HTTP/2 windows against grpc-js's 64 KiB default. Run by bench/rtt.sh.
// The delay comes from a TCP proxy that holds every piece of data for <delay> ms in each
// direction (this machine's kernel has no netem): HTTP/2 flow control is end to end, so a window
// smaller than bandwidth x RTT stalls exactly as it would across hosts.
// Usage: node rtt.js server <addr> <port> <raise 0|1> | proxy <port> <target port> <delay ms> | client <addr> <port> <MiB>
import * as grpc from '@grpc/grpc-js';
import * as net from 'node:net';
import { GRPC_CHANNEL_OPTIONS, GRPC_SERVER_OPTIONS, grpcServerSessionWindow, grpcServerStreamWindow } from '@openrds/common';

const raw = (b: Buffer): Buffer => b;
const service: grpc.ServiceDefinition = {
  Upload: { path: '/bench.Rtt/Upload', requestStream: true, responseStream: false, requestSerialize: raw, requestDeserialize: raw,
    responseSerialize: raw, responseDeserialize: raw, originalName: 'upload' },
};

async function server(addr: string, port: number, raise: boolean): Promise<void> {
  const s = new grpc.Server(GRPC_SERVER_OPTIONS);
  if (raise) grpcServerStreamWindow(s);
  s.addService(service, {
    Upload: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      let n = 0;
      call.on('data', (d: Buffer) => { n += d.length; });
      call.on('end', () => cb(null, Buffer.from(String(n))));
    },
  });
  await new Promise<number>((resolve, reject) => s.bindAsync(`${addr}:${port}`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  if (raise) grpcServerSessionWindow(s);
  console.log('ready');
}

async function client(addr: string, port: number, mib: number): Promise<void> {
  const Client = grpc.makeGenericClientConstructor(service, 'Rtt');
  const c = new Client(`${addr}:${port}`, grpc.credentials.createInsecure(), GRPC_CHANNEL_OPTIONS);
  const chunk = Buffer.alloc(1024 * 1024, 7);
  const start = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => {
    const call = (c as unknown as { upload: (cb: (e: Error | null) => void) => grpc.ClientWritableStream<Buffer> }).upload((e) => (e ? reject(e) : resolve()));
    let n = 0;
    const write = (): void => {
      while (n < mib) { n++; if (!call.write(chunk)) { call.once('drain', write); return; } }
      call.end();
    };
    write();
  });
  const s = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(JSON.stringify({ mib, seconds: Number(s.toFixed(3)), mbps: Number((mib * 1.048576 / s).toFixed(1)) }));
  c.close();
}

/** Forwards both directions after `delayMs`, in order. */
async function proxy(port: number, target: number, delayMs: number): Promise<void> {
  const later = (fn: () => void): void => { if (delayMs > 0) setTimeout(fn, delayMs); else fn(); };
  const srv = net.createServer((a) => {
    const b = net.connect(target, '127.0.0.1');
    for (const s of [a, b]) s.setNoDelay(true);
    a.on('data', (d) => later(() => b.write(d)));
    b.on('data', (d) => later(() => a.write(d)));
    a.on('close', () => b.destroy());
    b.on('close', () => a.destroy());
    a.on('error', () => b.destroy());
    b.on('error', () => a.destroy());
  });
  await new Promise<void>((resolve) => srv.listen(port, '127.0.0.1', resolve));
  console.log('ready');
}

const [mode, addr, port, arg] = process.argv.slice(2);
(mode === 'server' ? server(addr!, Number(port), arg === '1')
  : mode === 'proxy' ? proxy(Number(addr), Number(port), Number(arg))
    : client(addr!, Number(port), Number(arg ?? 256)))
  .catch((err) => { console.error(err); process.exit(1); });

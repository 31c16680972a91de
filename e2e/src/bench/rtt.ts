// Upload throughput of one gRPC client stream across an artificial round-trip time: the
// repo-server's raised HTTP/2 windows against grpc-js's 64 KiB default. Run by bench/rtt.sh,
// which puts the server and the client in two network namespaces joined by a veth pair with
// `tc qdisc netem delay`. Usage: node rtt.js server <addr> <port> <raise 0|1> | client <addr> <port> <MiB>
import * as grpc from '@grpc/grpc-js';
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

const [mode, addr, port, arg] = process.argv.slice(2);
(mode === 'server' ? server(addr!, Number(port), arg === '1') : client(addr!, Number(port), Number(arg ?? 256)))
  .catch((err) => { console.error(err); process.exit(1); });

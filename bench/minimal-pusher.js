'use strict';
/*
 * bench/minimal-pusher.c's server and agent in Node (mode `minimal-node` of `bench/wal.sh`): the
 * same protocol, the same steps, nothing of ours. Not a tool: a yardstick that tells what of the
 * distance between the C yardstick and openrds' push is Node's own (a runtime, one event loop per
 * process) and what is our path (gRPC, zstd, hashes, threads). The archive_command still waits with
 * the C program's `wait`.
 *
 * node minimal-pusher.js server <port> <dir> <sync: 1|0>
 * node minimal-pusher.js agent <pg_wal> <spool> <port> <rest> <log>
 *
 * BENCH_MINIMAL_GRPC=call|stream: the same bytes over gRPC (@grpc/grpc-js, raw buffers, no protobuf)
 * instead of a plain TCP connection: a unary call per file, or one bidirectional stream kept open
 * (a message per file, one answer each).
 *
 * BENCH_MINIMAL_WORK=y adds the work of ours that is not transport: the agent compresses the rest
 * with zstd (level 1, zstd-napi, synchronous) and the server decompresses it and hashes it (sha256).
 */
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const work = process.env.BENCH_MINIMAL_WORK === 'y';
// BENCH_MINIMAL_REUSE=y: buffers kept from one file to the next (fresh memory costs a page fault per 4 KiB).
const reuse = process.env.BENCH_MINIMAL_REUSE === 'y';
const keep = reuse ? Buffer.alloc(4 << 20) : undefined;
// BENCH_MINIMAL_TRACE=<prefix>: each step's time (ms since the epoch) appended to <prefix>.agent / <prefix>.server.
const tracePath = process.env.BENCH_MINIMAL_TRACE;
const now = () => performance.timeOrigin + performance.now();
let marks = [];
// With each time, this thread's time on a core and waiting for one (ms, /proc/thread-self/schedstat).
const sched = tracePath ? fs.openSync('/proc/thread-self/schedstat', 'r') : -1;
const schedBuf = Buffer.alloc(128);
const schedNow = () => { const n = fs.readSync(sched, schedBuf, 0, 128, 0); const [run, wait] = schedBuf.subarray(0, n).toString().split(' '); return `${(Number(run) / 1e6).toFixed(3)},${(Number(wait) / 1e6).toFixed(3)}`; };
const mark = (what) => { if (tracePath) marks.push(`${what}=${now().toFixed(3)},${schedNow()}`); };
const markFlush = (who, name) => { if (tracePath) fs.appendFileSync(`${tracePath}.${who}`, `${name} ${marks.join(' ')}\n`); marks = []; };
const grpcMode = process.env.BENCH_MINIMAL_GRPC;
const modules = process.env.BENCH_MINIMAL_MODULES ?? process.cwd();
const grpc = grpcMode ? require(require.resolve('@grpc/grpc-js', { paths: [modules] })) : undefined;
const raw = { requestSerialize: (b) => b, requestDeserialize: (b) => b, responseSerialize: (b) => b, responseDeserialize: (b) => b };
const service = {
  push: { path: '/minimal.Pusher/Push', requestStream: false, responseStream: false, ...raw },
  pushes: { path: '/minimal.Pusher/Pushes', requestStream: true, responseStream: true, ...raw },
};
const channelOptions = { 'grpc-node.flow_control_window': 16 * 1024 * 1024, 'grpc.max_receive_message_length': 64 << 20, 'grpc.max_send_message_length': 64 << 20 };
const zstd = work ? require(require.resolve('zstd-napi', { paths: [modules] })) : undefined;

function server(port, dir, sync) {
  const dfd = fs.openSync(dir, 'r');
  /** One message ("<name> <len>\n<bytes>"): written, synced, renamed; then the directory synced. */
  const store = (name, body) => {
    if (zstd) require('node:crypto').createHash('sha256').update(zstd.decompress(body)).digest();
    const tmp = path.join(dir, `${name}.tmp`);
    const fd = fs.openSync(tmp, 'w', 0o600);
    fs.writeSync(fd, body);
    mark('written');
    if (sync) fs.fdatasyncSync(fd);
    mark('synced');
    fs.closeSync(fd);
    fs.renameSync(tmp, path.join(dir, name));
    if (sync) fs.fsyncSync(dfd);
    mark('dirsynced');
  };
  const parse = (msg) => {
    const nl = msg.indexOf(10);
    const [name] = msg.subarray(0, nl).toString().split(' ');
    return [name, msg.subarray(nl + 1)];
  };
  if (grpc) {
    const srv = new grpc.Server(channelOptions);
    srv.addService(service, {
      push: (call, cb) => { mark('data'); const [name, body] = parse(call.request); store(name, body); cb(null, Buffer.from('ok')); mark('replied'); markFlush('server', name); },
      pushes: (call) => call.on('data', (msg) => { mark('data'); const [name, body] = parse(msg); store(name, body); call.write(Buffer.from('ok')); mark('replied'); markFlush('server', name); }),
    });
    srv.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => { if (err) throw err; });
    return;
  }
  net.createServer((c) => {
    c.setNoDelay(true);
    let buf = Buffer.alloc(0);
    let held = 0;
    c.on('data', (d) => {
      mark(`data${d.length}`);
      if (keep) { d.copy(keep, held); held += d.length; buf = keep.subarray(0, held); } else buf = buf.length ? Buffer.concat([buf, d]) : d;
      for (;;) {
        const nl = buf.indexOf(10);
        if (nl < 0) return;
        const [name, lenText] = buf.subarray(0, nl).toString().split(' ');
        const len = Number(lenText);
        if (buf.length < nl + 1 + len) return;
        // Stored before what follows it moves to the kept buffer's start (the body may be in that buffer).
        store(name, buf.subarray(nl + 1, nl + 1 + len));
        buf = buf.subarray(nl + 1 + len);
        if (keep) { buf.copy(keep, 0); held = buf.length; }
        c.write('ok\n');
        mark('replied');
        markFlush('server', name);
      }
    });
  }).listen(port, '127.0.0.1');
}

function agent(walDir, spool, port, rest, logPath) {
  const status = path.join(walDir, 'archive_status');
  const queue = [];
  const seen = new Set();
  let busy = false;
  let reply = '';
  let done;
  const c = new net.Socket();
  let tries = 0;
  // The server may still be starting: a few seconds of tries.
  const connect = () => c.connect(port, '127.0.0.1');
  c.setNoDelay(true);
  c.on('data', (d) => {
    mark('reply');
    reply += d.toString();
    while (reply.includes('\n')) {
      const line = reply.slice(0, reply.indexOf('\n'));
      reply = reply.slice(reply.indexOf('\n') + 1);
      if (line !== 'ok') throw new Error(`push: ${line}`);
      done();
    }
  });
  c.on('error', (e) => {
    if (!c.connecting && c.readyState !== 'closed' || ++tries > 100) { console.error(`minimal-pusher.js agent: ${e.message}`); process.exit(2); }
    setTimeout(connect, 50);
  });
  const next = () => {
    if (busy || queue.length === 0) return;
    busy = true;
    const name = queue.shift();
    const t0 = now();
    mark('start');
    const fd = fs.openSync(path.join(walDir, name), 'r');
    const size = fs.fstatSync(fd).size;
    const n = Math.min(size, rest);
    let body = keep ? keep.subarray(0, n) : Buffer.allocUnsafe(n);
    fs.readSync(fd, body, 0, n, size - n);
    fs.closeSync(fd);
    if (zstd) body = zstd.compress(body, 1);
    mark('read');
    done = () => {
      fs.closeSync(fs.openSync(path.join(spool, `${name}.ok`), 'w', 0o644));
      mark('ok');
      markFlush('agent', name);
      fs.appendFileSync(logPath, `${t0.toFixed(3)} ${name} ${(now() - t0).toFixed(3)}\n`);
      busy = false;
      next();
    };
    if (grpcSend) grpcSend(Buffer.concat([Buffer.from(`${name} ${body.length}\n`), body]));
    else if (keep) { c.cork(); c.write(`${name} ${body.length}\n`); c.write(body); c.uncork(); } else c.write(Buffer.concat([Buffer.from(`${name} ${body.length}\n`), body]));
    mark('sent');
  };
  const want = (entry) => {
    if (entry && entry.endsWith('.ready')) {
      // The event's lag: the .ready's ctime (its creation) to now.
      try { mark(`ready@${(Number(fs.statSync(path.join(status, entry), { bigint: true }).ctimeNs / 1000n) / 1000).toFixed(3)}`); } catch { /* gone */ }
      mark('event');
    }
    if (!entry || !entry.endsWith('.ready')) return;
    const name = entry.slice(0, -6);
    if (seen.has(name) || !fs.existsSync(path.join(status, entry))) return;
    seen.add(name);
    queue.push(name);
    next();
  };
  const begin = () => {
    fs.watch(status, (_event, entry) => want(entry));
    for (const entry of fs.readdirSync(status)) want(entry);
  };
  let grpcSend;
  if (grpc) {
    const Client = grpc.makeGenericClientConstructor(service, 'Pusher');
    const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), channelOptions);
    const answered = (err, res) => {
      mark('reply');
      if (err || res.toString() !== 'ok') { console.error(`minimal-pusher.js agent: ${err ? err.message : res}`); process.exit(2); }
      done();
    };
    if (grpcMode === 'stream') {
      let call;
      grpcSend = (msg) => {
        if (!call) {
          call = client.pushes();
          call.on('data', (res) => answered(null, res));
          call.on('error', (err) => answered(err));
        }
        call.write(msg);
      };
    } else {
      grpcSend = (msg) => client.push(msg, answered);
    }
    // The server may still be starting: a few seconds of tries.
    const ready = () => client.waitForReady(Date.now() + 1000, (err) => {
      if (!err) begin();
      else if (++tries > 10) { console.error(`minimal-pusher.js agent: ${err.message}`); process.exit(2); } else setTimeout(ready, 100);
    });
    ready();
    return;
  }
  c.once('connect', begin);
  connect();
}

const [mode, ...a] = process.argv.slice(2);
if (mode === 'server' && a.length === 3) server(Number(a[0]), a[1], a[2] === '1');
else if (mode === 'agent' && a.length === 5) agent(a[0], a[1], Number(a[2]), Number(a[3]), a[4]);
else { console.error('usage: node minimal-pusher.js server <port> <dir> <sync> | agent <pg_wal> <spool> <port> <rest> <log>'); process.exit(2); }

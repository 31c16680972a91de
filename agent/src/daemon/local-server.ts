import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { errorWrap, log } from '@openrds/common';

/** One request of a short-lived archive-push / archive-get to the local daemon (a JSON line). */
export type LocalRequest =
  | { cmd: 'archive-push'; stanza: string; path: string }
  | { cmd: 'archive-get'; stanza: string; walName: string; destination: string }
  | { cmd: 'ping' };

export type LocalResponse =
  | { ok: true; warning?: string; found?: boolean }
  | { ok: false; error: { name: string; code: number; message: string; hint?: string } };

export type LocalHandler = (req: LocalRequest) => Promise<{ warning?: string; found?: boolean }>;

/**
 * The daemon's unix socket for the short-lived commands PostgreSQL runs: they send one JSON line
 * and read one back, so they need neither gRPC nor a connection of their own. The socket is made
 * accessible to the daemon's OS user only (PostgreSQL runs as that user).
 */
export async function localServerStart(socketPath: string, handler: LocalHandler): Promise<net.Server> {
  await fs.promises.mkdir(path.dirname(socketPath), { recursive: true, mode: 0o700 });
  await fs.promises.rm(socketPath, { force: true });
  const server = net.createServer((sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', () => undefined);
    sock.on('data', (data: string) => {
      buf += data;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      buf = '';
      void respond(line).then((res) => sock.end(`${JSON.stringify(res)}\n`));
    });
  });
  const respond = async (line: string): Promise<LocalResponse> => {
    try {
      const req = JSON.parse(line) as LocalRequest;
      if (req.cmd === 'ping') return { ok: true };
      return { ok: true, ...(await handler(req)) };
    } catch (err) {
      const e = errorWrap(err);
      return { ok: false, error: { name: e.name, code: e.code, message: e.message, hint: e.hint } };
    }
  };
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  await fs.promises.chmod(socketPath, 0o600);
  log.detail(`local socket listening at '${socketPath}'`);
  return server;
}

/**
 * Sends one request to the local daemon. Resolves undefined when no daemon listens (so the caller
 * falls back to the repo-server), rejects on a timeout.
 */
export function localRequest(socketPath: string, req: LocalRequest, timeoutMs: number): Promise<LocalResponse | undefined> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection(socketPath);
    let buf = '';
    let connected = false;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer from the local agent at '${socketPath}' within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => { connected = true; sock.write(`${JSON.stringify(req)}\n`); });
    sock.on('data', (d: string) => { buf += d; });
    sock.on('end', () => {
      clearTimeout(timer);
      try { resolve(JSON.parse(buf) as LocalResponse); } catch { reject(new Error(`bad answer from the local agent: '${buf}'`)); }
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (!connected && ['ENOENT', 'ECONNREFUSED', 'EACCES'].includes(err.code ?? '')) resolve(undefined);
      else reject(err);
    });
  });
}

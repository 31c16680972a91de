import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { errorWrap, log } from '@openrds/common';
import type { LocalRequest, LocalResponse } from './local-client';

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

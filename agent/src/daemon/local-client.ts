import * as net from 'node:net';

// The client side of the daemon's unix socket. It imports nothing heavy on purpose: the
// short-lived archive-push / archive-get commands load it on every call.

/** One request of a short-lived archive-push / archive-get to the local daemon (a JSON line). */
export type LocalRequest =
  | { cmd: 'archive-push'; stanza: string; path: string }
  | { cmd: 'archive-get'; stanza: string; walName: string; destination: string }
  | { cmd: 'ping' };

export type LocalResponse =
  | { ok: true; warning?: string; found?: boolean }
  | { ok: false; error: { name: string; code: number; message: string; hint?: string } };

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

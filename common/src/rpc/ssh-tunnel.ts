import { createHmac } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Client as SshClient, ClientChannel } from 'ssh2';
import type { Config } from '../config/config';
import { ConfigError } from '../error';
import { log } from '../log';
import { grpcAddress } from './proto';
import { tlsKeyFileRead } from './tls';

export interface SshTunnelOptions {
  host: string;
  port: number;
  user: string;
  privateKey: Buffer;
  /** known_hosts text: the backup host's key must be in it (plain or hashed host names). */
  knownHosts: string;
  knownHostsFile: string;
  /** Where the repo-server listens, seen from the backup host. */
  remoteHost: string;
  remotePort: number;
}

/** The names a known_hosts line may use for host:port. */
function hostNames(host: string, port: number): string[] {
  return port === 22 ? [host, `[${host}]:22`] : [`[${host}]:${port}`];
}

/** True when a known_hosts line pins this host's key (plain or `|1|salt|hash` names). */
export function knownHostsMatch(knownHosts: string, host: string, port: number, key: Buffer): boolean {
  const names = hostNames(host, port);
  for (const raw of knownHosts.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    if (fields[0]!.startsWith('@')) continue;   // @revoked / @cert-authority: not for pinning
    const [hostsField, , keyField] = fields;
    if (!hostsField || !keyField) continue;
    const matches = hostsField.split(',').some((h) => {
      if (h.startsWith('|1|')) {
        const [, , salt, hash] = h.split('|');
        if (!salt || !hash) return false;
        return names.some((n) => createHmac('sha1', Buffer.from(salt, 'base64')).update(n).digest('base64') === hash);
      }
      return names.includes(h);
    });
    if (matches && Buffer.from(keyField, 'base64').equals(key)) return true;
  }
  return false;
}

const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 10_000;

/**
 * gRPC through SSH: a local unix socket (in a 0700 directory) whose connections are forwarded,
 * each as a direct-tcpip channel of one SSH connection, to the repo-server on the backup host.
 * TCP_NODELAY is set on the SSH socket (gRPC's small frames otherwise wait for Nagle: ~25x
 * slower). The SSH connection is made when the first gRPC connection needs it, again after it
 * drops (with backoff, 0.25 s doubling to 10 s), and the backup host's key must be pinned in
 * known_hosts (never trusted on first use).
 */
export class SshTunnel {
  readonly socketPath: string;
  private readonly server: net.Server;
  private client: Promise<SshClient> | undefined;
  private backoff = 0;
  private lastError: string | undefined;

  constructor(private readonly opts: SshTunnelOptions) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'openrds-ssh-'));
    fs.chmodSync(dir, 0o700);
    this.socketPath = path.join(dir, 'grpc.sock');
    this.server = net.createServer((local) => { void this.forward(local); });
    this.server.on('error', (err) => log.warn(`ssh tunnel: local socket failed: ${err.message}`));
    this.server.listen(this.socketPath);
    // gRPC's own connections keep the process alive while they are used; the listener does not.
    this.server.unref();
    process.once('exit', () => { try { fs.rmSync(dir, { recursive: true, force: true }); } catch { /* gone */ } });
  }

  /** Why the tunnel last failed, for error messages. */
  get problem(): string | undefined { return this.lastError; }

  close(): void {
    this.server.close();
    void this.client?.then((c) => c.end(), () => undefined);
  }

  private async forward(local: net.Socket): Promise<void> {
    local.on('error', () => undefined);
    let channel: ClientChannel;
    try {
      const client = await this.connect();
      channel = await new Promise<ClientChannel>((resolve, reject) => {
        client.forwardOut('127.0.0.1', 0, this.opts.remoteHost, this.opts.remotePort, (err, ch) => (err ? reject(err) : resolve(ch)));
      });
    } catch (err) {
      this.lastError = (err as Error).message;
      log.warn(`ssh tunnel to ${this.opts.user}@${this.opts.host}:${this.opts.port}: ${this.lastError}`);
      local.destroy();
      return;
    }
    channel.on('error', () => local.destroy());
    local.pipe(channel).pipe(local);
    channel.on('close', () => local.destroy());
    local.on('close', () => channel.close());
  }

  private connect(): Promise<SshClient> {
    if (this.client) return this.client;
    const attempt = (async () => {
      if (this.backoff > 0) await new Promise((r) => setTimeout(r, this.backoff));
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- ssh2 is loaded only by a client that tunnels
      const { Client } = require('ssh2') as typeof import('ssh2');
      const client = new Client();
      const sock = net.connect(this.opts.port, this.opts.host);
      sock.setNoDelay(true);
      // The tunnel does not keep a process alive by itself: gRPC's connections do while in use.
      sock.unref();
      let keyRefused = false;
      await new Promise<void>((resolve, reject) => {
        client.once('ready', () => resolve());
        client.once('error', (err) => reject(keyRefused
          ? new ConfigError(`the ssh host key of ${this.opts.host}:${this.opts.port} is not the one pinned in '${this.opts.knownHostsFile}'`,
            { hint: `add the backup host's key: ssh-keyscan -p ${this.opts.port} ${this.opts.host} >> ${this.opts.knownHostsFile} (after checking its fingerprint)` })
          : err));
        client.connect({
          sock, username: this.opts.user, privateKey: this.opts.privateKey, readyTimeout: 20_000, keepaliveInterval: 10_000, keepaliveCountMax: 3,
          hostVerifier: (key: Buffer) => {
            const ok = knownHostsMatch(this.opts.knownHosts, this.opts.host, this.opts.port, key);
            if (!ok) keyRefused = true;
            return ok;
          },
        });
      });
      this.backoff = 0;
      this.lastError = undefined;
      log.detail(`ssh tunnel to ${this.opts.user}@${this.opts.host}:${this.opts.port} open (repo-server at ${this.opts.remoteHost}:${this.opts.remotePort} there)`);
      const reset = (why: string) => () => {
        if (this.client === attempt) {
          this.client = undefined;
          log.detail(`ssh tunnel to ${this.opts.host} ${why}: reconnects when next needed`);
        }
      };
      client.on('close', reset('closed'));
      client.on('error', reset('failed'));
      return client;
    })();
    this.client = attempt;
    attempt.catch(() => {
      if (this.client === attempt) this.client = undefined;
      this.backoff = Math.min(BACKOFF_MAX_MS, Math.max(BACKOFF_MIN_MS, this.backoff * 2));
    });
    return attempt;
  }
}

let tunnel: SshTunnel | undefined;

/** Closes the process's SSH tunnel (a short-lived command calls it when done; the daemon never does). */
export function repoTunnelClose(): void {
  tunnel?.close();
  tunnel = undefined;
}

/**
 * Where a client dials the repo-server: repo-host:repo-host-port, or with repo-host-type=ssh the
 * local end of the process's SSH tunnel to repo-host (the repo-server listening on the backup
 * host's loopback). With TLS through the tunnel the certificate is still checked against repo-host.
 */
export function repoTarget(config: Config): { address: string; options: Record<string, string>; via: string } {
  const host = config.str('repo-host');
  const port = config.int('repo-host-port');
  if (config.str('repo-host-type') !== 'ssh') return { address: grpcAddress(host, port), options: {}, via: grpcAddress(host, port) };
  if (!tunnel) {
    const user = config.strOpt('repo-host-user') ?? os.userInfo().username;
    const keyFile = config.strOpt('repo-host-ssh-key-file') ?? path.join(os.homedir(), '.ssh', 'id_ed25519');
    const knownHostsFile = config.strOpt('repo-host-ssh-known-hosts') ?? path.join(os.homedir(), '.ssh', 'known_hosts');
    let knownHosts: string;
    try {
      knownHosts = fs.readFileSync(knownHostsFile, 'utf8');
    } catch (err) {
      throw new ConfigError(`unable to read repo-host-ssh-known-hosts '${knownHostsFile}': ${(err as Error).message}`,
        { hint: `pin the backup host's key: ssh-keyscan -p ${config.int('repo-host-ssh-port')} ${host} > ${knownHostsFile} (after checking its fingerprint)` });
    }
    tunnel = new SshTunnel({
      host, port: config.int('repo-host-ssh-port'), user, privateKey: tlsKeyFileRead(keyFile, 'repo-host-ssh-key-file'), knownHosts, knownHostsFile,
      remoteHost: '127.0.0.1', remotePort: port,
    });
  }
  return {
    address: `unix:${tunnel.socketPath}`,
    // TLS through the tunnel: the repo-server's certificate names repo-host, not the socket.
    options: { 'grpc.ssl_target_name_override': host, 'grpc.default_authority': host },
    via: `ssh ${config.strOpt('repo-host-user') ?? os.userInfo().username}@${host}:${config.int('repo-host-ssh-port')} -> 127.0.0.1:${port}`,
  };
}

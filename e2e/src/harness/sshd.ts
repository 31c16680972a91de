import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { freePort, runCommand, runOk, tmpDir } from './processes';

/** The login a tunnel uses on the "backup host": no shell, no password, key only. */
export const TUNNEL_USER = 'openrds-tunnel';

/** A real OpenSSH server on 127.0.0.1 (Debian's openssh-server, installed by scripts/setup-test.sh). */
export interface Sshd {
  port: number;
  dir: string;
  /** The client's private key (owned by `keyOwner`, 0600) and the known_hosts file that pins this server. */
  keyFile: string;
  knownHosts: string;
  stop(): Promise<void>;
  /** Ends every open SSH session (the tunnels drop), the server keeps listening. */
  cutSessions(): Promise<void>;
}

/** `netns`/`address`: run it in a network namespace (the backup host), listening on that address. */
export async function sshdStart(keyOwner: { uid: number; gid: number }, where: { netns?: string; address?: string } = {}): Promise<Sshd> {
  const address = where.address ?? '127.0.0.1';
  if ((await runCommand('id', [TUNNEL_USER], {})).code !== 0) {
    // '*': no password, but not locked (sshd refuses locked accounts even for keys).
    await runOk('useradd', ['-M', '-d', '/nonexistent', '-s', '/usr/sbin/nologin', '-p', '*', TUNNEL_USER]);
  }
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const dir = await tmpDir('openrds-sshd-');
  const port = await freePort();
  await runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'host_ed25519')]);
  await runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'openrds-agent', '-f', path.join(dir, 'client_ed25519')]);
  const keyFile = path.join(dir, 'client_ed25519');
  fs.chownSync(keyFile, keyOwner.uid, keyOwner.gid);
  fs.copyFileSync(`${keyFile}.pub`, path.join(dir, 'authorized_keys'));
  const knownHosts = path.join(dir, 'known_hosts');
  fs.writeFileSync(knownHosts, `[${address}]:${port} ${fs.readFileSync(path.join(dir, 'host_ed25519.pub'), 'utf8')}`, { mode: 0o644 });
  const config = path.join(dir, 'sshd_config');
  fs.writeFileSync(config, [
    `Port ${port}`, `ListenAddress ${address}`, `HostKey ${path.join(dir, 'host_ed25519')}`,
    `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`, `PidFile ${path.join(dir, 'sshd.pid')}`,
    'StrictModes no', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'UsePAM no',
    `AllowUsers ${TUNNEL_USER}`, 'AllowTcpForwarding local', 'PermitTTY no', 'X11Forwarding no', 'LogLevel VERBOSE', '',
  ].join('\n'));
  const argv = ['/usr/sbin/sshd', '-D', '-e', '-f', config];
  const child: ChildProcess = spawn(where.netns ? 'ip' : argv[0]!, where.netns ? ['netns', 'exec', where.netns, ...argv] : argv.slice(1), { stdio: ['ignore', 'ignore', fs.openSync(path.join(dir, 'sshd.log'), 'a')] });
  const until = Date.now() + 20_000;
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, address, () => { s.end(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (up) break;
    if (child.exitCode !== null || Date.now() > until) throw new Error(`sshd did not start: ${fs.readFileSync(path.join(dir, 'sshd.log'), 'utf8')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port, dir, keyFile, knownHosts,
    stop: async () => {
      if (child.exitCode !== null) return;
      await new Promise<void>((resolve) => { child.once('exit', () => resolve()); child.kill('SIGTERM'); });
      await runCommand('pkill', ['-f', `sshd: ${TUNNEL_USER}`], {});
    },
    cutSessions: async () => { await runCommand('pkill', ['-KILL', '-f', `sshd: ${TUNNEL_USER}`], {}); },
  };
}

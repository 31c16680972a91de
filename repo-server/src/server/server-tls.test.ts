import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import {
  AccessDeniedError, ConfigError, GRPC_CHANNEL_OPTIONS, OPENRDS_VERSION, configLoad, errorFromGrpc, logSubscribe, protoLoad,
} from '@openrds/common';
import type { AdminClient, AgentGatewayClient, ArchiveGetMessage__Output, CommandEvent__Output } from '@openrds/common';
import { openssl, pkiInit, pkiIssue } from '../pki/pki';
import { repoServerStart, type RepoServer } from './server';

/** Mutual TLS against a real repo-server on 127.0.0.1 with certificates made by pki (openssl). */
describe('repo-server with mutual TLS', () => {
  let dir: string;
  let pki: string;
  let server: RepoServer;
  const logs: string[] = [];
  let unsubscribe: () => void;

  const config = (argv: string[]) => configLoad({ command: 'repo-server', argv: [`--repo1-path=${dir}/repo`, '--config=/dev/null', '--log-level-console=off', ...argv], env: {} });
  const tlsArgs = () => [`--tls-server-cert-file=${pki}/server.crt`, `--tls-server-key-file=${pki}/server.key`, `--tls-server-ca-file=${pki}/ca.crt`,
    '--tls-server-auth=agent-a=a', '--tls-server-auth=agent-all=*', '--tls-server-admin=ops'];

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'server-tls-'));
    fs.mkdirSync(path.join(dir, 'repo'));
    pki = path.join(dir, 'pki');
    await pkiInit(pki, { hosts: ['localhost', '127.0.0.1'] });
    for (const cn of ['agent-a', 'ops']) await pkiIssue(pki, { cn });
    // The same CN from another CA, and an expired certificate from the right CA.
    await pkiInit(path.join(dir, 'other'), { hosts: ['localhost'] });
    await pkiIssue(path.join(dir, 'other'), { cn: 'ops' });
    const csr = await openssl(['req', '-new', '-key', `${pki}/ops.key`, '-subj', '/CN=ops']);
    fs.writeFileSync(path.join(dir, 'expired.crt'), await openssl(['x509', '-req', '-CA', `${pki}/ca.crt`, '-CAkey', `${pki}/ca.key`, '-days', '-1', '-set_serial', '7'], csr));
    unsubscribe = logSubscribe((r) => logs.push(`${r.level}: ${r.message}`));
    server = await repoServerStart(config(['--tls-server-port=0', ...tlsArgs()]));
  });

  afterAll(async () => {
    await server?.stop();
    unsubscribe?.();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const creds = (cert?: string, key?: string, ca = `${pki}/ca.crt`) =>
    grpc.credentials.createSsl(fs.readFileSync(ca), key ? fs.readFileSync(key) : null, cert ? fs.readFileSync(cert) : null);
  const admin = (c: grpc.ChannelCredentials) => new (protoLoad().Admin)(`localhost:${server.port}`, c, GRPC_CHANNEL_OPTIONS) as AdminClient;
  const gateway = (c: grpc.ChannelCredentials) => new (protoLoad().AgentGateway)(`127.0.0.1:${server.port}`, c, GRPC_CHANNEL_OPTIONS) as AgentGatewayClient;

  async function run(client: AdminClient, command: string): Promise<string> {
    try {
      let text = '';
      for await (const ev of client.run({ command, stanza: '', options: {}, listOptions: [], args: [] }) as AsyncIterable<CommandEvent__Output>) {
        if (ev.result) text += ev.result.text;
      }
      return text;
    } catch (err) {
      throw errorFromGrpc(err);
    } finally {
      client.close();
    }
  }

  async function archiveGet(client: AgentGatewayClient, stanza: string): Promise<unknown> {
    try {
      for await (const m of client.archiveGet({ stanza, walName: '000000010000000000000001' }) as AsyncIterable<ArchiveGetMessage__Output>) return m;
      return undefined;
    } catch (err) {
      throw errorFromGrpc(err);
    } finally {
      client.close();
    }
  }

  it('answers a ping from a client without a certificate (liveness needs no authorization)', async () => {
    const client = admin(creds());
    const reply = await new Promise<{ version: string }>((resolve, reject) => client.ping({}, (err, r) => (err ? reject(err) : resolve(r!))));
    client.close();
    expect(reply.version).toBe(OPENRDS_VERSION);
    expect(logs.some((l) => l.includes('(mutual TLS)'))).toBe(true);
  });

  it('runs an admin command for an admin CN', async () => {
    expect(await run(admin(creds(`${pki}/ops.crt`, `${pki}/ops.key`)), 'agents')).toBe('no agents connected\n');
  });

  it('refuses an admin command without a client certificate, and logs it', async () => {
    const err = await run(admin(creds()), 'agents').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AccessDeniedError);
    expect((err as Error).message).toContain('the repo-server requires a client certificate signed by its CA');
    expect(logs).toContainEqual(expect.stringMatching(/^warn: access denied: \/openrds.v1.Admin\/Run from .* cn <no verified certificate>/));
  });

  it('refuses an admin command from an agent CN, and logs the CN', async () => {
    const err = await run(admin(creds(`${pki}/agent-a.crt`, `${pki}/agent-a.key`)), 'agents').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AccessDeniedError);
    expect((err as Error).message).toBe("client certificate CN 'agent-a' may not run admin commands");
    expect(logs).toContainEqual(expect.stringContaining("access denied: /openrds.v1.Admin/Run from 127.0.0.1:"));
    expect(logs).toContainEqual(expect.stringContaining("cn 'agent-a': client certificate CN 'agent-a' may not run admin commands"));
  });

  it('refuses a certificate of another CA with the same CN', async () => {
    const err = await run(admin(creds(`${dir}/other/ops.crt`, `${dir}/other/ops.key`)), 'agents').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AccessDeniedError);
    expect((err as Error).message).toContain('requires a client certificate signed by its CA');
  });

  it('refuses an expired certificate of the right CA', async () => {
    const err = await run(admin(creds(`${dir}/expired.crt`, `${pki}/ops.key`)), 'agents').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AccessDeniedError);
    expect((err as Error).message).toContain('requires a client certificate signed by its CA');
  });

  it('serves an agent CN for its own stanza only, naming CN and stanza in the log', async () => {
    // Stanza 'a' passes authorization (and then has no archive yet); stanza 'b' is refused.
    const own = await archiveGet(gateway(creds(`${pki}/agent-a.crt`, `${pki}/agent-a.key`)), 'a').catch((e: unknown) => e);
    expect(own).not.toBeInstanceOf(AccessDeniedError);
    const err = await archiveGet(gateway(creds(`${pki}/agent-a.crt`, `${pki}/agent-a.key`)), 'b').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AccessDeniedError);
    expect((err as Error).message).toBe("client certificate CN 'agent-a' is not authorized for stanza 'b'");
    expect(logs).toContainEqual(expect.stringMatching(/access denied: \/openrds.v1.AgentGateway\/ArchiveGet from 127.0.0.1:\d+ cn 'agent-a' stanza 'b'/));
  });

  it('refuses a session registering a stanza the CN may not serve, and registers one it may', async () => {
    const hello = (stanza: string) => ({ hello: { agentId: 'h:/pg', hostname: 'h', version: OPENRDS_VERSION, pid: 1, osUser: 'postgres',
      stanzas: [{ stanza, pgPath: '/pg' }] } });
    const session = async (stanza: string): Promise<unknown> => {
      const client = gateway(creds(`${pki}/agent-a.crt`, `${pki}/agent-a.key`));
      const call = client.session();
      try {
        call.write(hello(stanza));
        for await (const m of call as AsyncIterable<{ helloAck?: unknown }>) if (m.helloAck) return m.helloAck;
        return undefined;
      } catch (err) {
        return errorFromGrpc(err);
      } finally {
        call.cancel();
        client.close();
      }
    };
    const err = await session('b');
    expect(err).toBeInstanceOf(AccessDeniedError);
    expect((err as Error).message).toBe("client certificate CN 'agent-a' is not authorized for stanza 'b'");
    expect(logs).toContainEqual(expect.stringMatching(/access denied: \/openrds.v1.AgentGateway\/Session from .* cn 'agent-a' stanza 'b'/));
    expect(server.agents.list()).toHaveLength(0);
    expect(await session('a')).toEqual(expect.objectContaining({ sessionId: expect.any(String) }));
  });

  it('refuses agent calls from an admin CN', async () => {
    const err = await archiveGet(gateway(creds(`${pki}/ops.crt`, `${pki}/ops.key`)), 'a').catch((e: unknown) => e);
    expect((err as Error).message).toBe("client certificate CN 'ops' is not an agent of this repo-server");
  });

  it('refuses to start with a server key others can read, or half the TLS settings', async () => {
    fs.copyFileSync(`${pki}/server.key`, `${dir}/loose.key`);
    fs.chmodSync(`${dir}/loose.key`, 0o644);
    const loose = tlsArgs().map((a) => (a.startsWith('--tls-server-key-file=') ? `--tls-server-key-file=${dir}/loose.key` : a));
    await expect(repoServerStart(config(['--tls-server-port=0', ...loose]))).rejects.toThrow(ConfigError);
    await expect(repoServerStart(config(['--tls-server-port=0', ...loose])))
      .rejects.toThrow(`tls-server-key-file '${dir}/loose.key' is readable or writable by group or others (mode 0644)`);
    await expect(repoServerStart(config(['--tls-server-port=0', `--tls-server-cert-file=${pki}/server.crt`])))
      .rejects.toThrow('mutual TLS needs tls-server-key-file and tls-server-ca-file');
  });

  it('listens beyond loopback with TLS', async () => {
    const wide = await repoServerStart(config(['--tls-server-address=0.0.0.0', '--tls-server-port=0', ...tlsArgs()]));
    await wide.stop();
  });
});

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ConfigError, OPENRDS_VERSION, configLoad, protoLoad } from '@openrds/common';
import { repoServerStart } from './server';

describe('repo-server listener', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'server-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const config = (argv: string[]) => configLoad({ command: 'repo-server', argv: [`--repo1-path=${dir}`, '--config=/dev/null', '--log-level-console=off', ...argv], env: {} });

  it('refuses to listen beyond loopback without TLS', async () => {
    await expect(repoServerStart(config(['--tls-server-address=0.0.0.0']))).rejects.toThrow(ConfigError);
    await expect(repoServerStart(config(['--tls-server-address=0.0.0.0']))).rejects.toThrow("refusing to listen on '0.0.0.0' without TLS");
  });

  it('listens on 127.0.0.1 by default and answers a ping', async () => {
    const server = await repoServerStart(config(['--tls-server-port=0']));
    try {
      const client = new (protoLoad().Admin)(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
      const reply = await new Promise<{ version: string }>((resolve, reject) => client.ping({}, (err, r) => (err ? reject(err) : resolve(r!))));
      client.close();
      expect(reply.version).toBe(OPENRDS_VERSION);
    } finally {
      await server.stop();
    }
  });
});

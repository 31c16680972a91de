import * as path from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { freePort, runOk, tmpDir } from './processes';

const SCRIPTS = path.resolve(__dirname, '..', '..', '..', 'scripts', 'objstore');

/** A running radosgw (single-node Ceph on 127.0.0.1) with a user testkey/testsecret and a bucket. */
export interface Radosgw {
  endpoint: string;
  bucket: string;
  key: string;
  keySecret: string;
  dir: string;
  stop(): Promise<void>;
  /** Stops / starts the S3 gateway only: requests fail meanwhile, the objects stay. */
  gatewayStop(): Promise<void>;
  gatewayStart(): Promise<void>;
}

/** Starts radosgw (installed by scripts/setup-test.sh) and creates `bucket`; ~13 s. */
export async function radosgwStart(bucket = 'openrds-test'): Promise<Radosgw> {
  const dir = path.join(await tmpDir('openrds-rgw-'), 'ceph');
  const port = await freePort();
  const monPort = await freePort();
  const script = path.join(SCRIPTS, 'radosgw.sh');
  {
    await runOk('bash', [script, 'start', dir, String(port), String(monPort)], { timeoutMs: 180_000 });
    const client = new S3Client({
      endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', forcePathStyle: true,
      credentials: { accessKeyId: 'testkey', secretAccessKey: 'testsecret' },
      requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
    });
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    client.destroy();
  }
  return {
    endpoint: `http://127.0.0.1:${port}`, bucket, key: 'testkey', keySecret: 'testsecret', dir,
    stop: async () => { await runOk('bash', [script, 'stop', dir], { timeoutMs: 60_000 }); },
    gatewayStop: async () => { await runOk('bash', [script, 'gw-stop', dir], { timeoutMs: 60_000 }); },
    gatewayStart: async () => { await runOk('bash', [script, 'gw-start', dir, String(port)], { timeoutMs: 120_000 }); },
  };
}

// An encrypted repository in S3 (a real radosgw, single-node Ceph started by the test): full →
// incr → point-in-time restore with the data checked; the gateway stopped in the middle of a full
// backup gives a clear error, leaves no partial object, and the next full backup resumes it.
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { PgCluster } from './harness/cluster';
import { radosgwStart, type Radosgw } from './harness/objstore';
import { fullIncrPitr } from './harness/repo-scenarios';
import { Stack } from './stack';

jest.setTimeout(900_000);

describe('encrypted S3 repository (radosgw)', () => {
  let rgw: Radosgw;
  let stack: Stack;
  let s3: S3Client;
  const restored: PgCluster[] = [];

  beforeAll(async () => {
    rgw = await radosgwStart('openrds-e2e');
    stack = await Stack.create({ version: 15, stanza: 's3e', globalOptions: {
      'repo1-type': 's3', 'repo1-path': '/openrds', 'repo1-s3-bucket': rgw.bucket, 'repo1-s3-endpoint': rgw.endpoint,
      'repo1-s3-uri-style': 'path', 'repo1-s3-region': 'us-east-1', 'repo1-cipher-type': 'aes-256-gcm', 'manifest-save-threshold': '1048576',
    } });
    // Secrets reach the repo-server through its environment only (the shared config file is world-readable).
    stack.serverEnv = { OPENRDS_REPO1_S3_KEY: rgw.key, OPENRDS_REPO1_S3_KEY_SECRET: rgw.keySecret, OPENRDS_REPO1_CIPHER_PASS: 'an s3 repository passphrase' };
    await stack.start();
    s3 = new S3Client({ endpoint: rgw.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: rgw.key, secretAccessKey: rgw.keySecret } });
  });
  afterAll(async () => {
    for (const c of restored) await c.destroy().catch(() => undefined);
    s3?.destroy();
    await stack?.destroy();
    await rgw?.stop();
  });

  const objects = async (prefix: string): Promise<{ key: string; size: number }[]> => {
    const out: { key: string; size: number }[] = [];
    let token: string | undefined;
    do {
      const r = await s3.send(new ListObjectsV2Command({ Bucket: rgw.bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }));
      for (const o of r.Contents ?? []) out.push({ key: o.Key!, size: o.Size ?? 0 });
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return out;
  };
  const labels = async (): Promise<string[]> =>
    JSON.parse(await stack.adminOk(['info', `--stanza=${stack.stanza}`, '--output=json']))[0].backup.map((b: { label: string }) => b.label);
  const restoreAndStart = async (name: string, args: string[]): Promise<PgCluster> => {
    const dir = stack.restoreDir(name);
    await stack.adminOk(['restore', `--stanza=${stack.stanza}`, `--pg1-path=${dir}`, '--archive-mode=off', ...args]);
    const c = await PgCluster.fromExistingDataDir(dir, { version: 15 });
    restored.push(c);
    await c.start();
    await c.waitPromoted();
    return c;
  };

  it('full, incr, and a point-in-time restore from the bucket give the data of that moment', async () => {
    await fullIncrPitr(stack, async () => (await objects('openrds/')).map((o) => o.key.slice('openrds/'.length)), restored);
  });

  it('the gateway stopped mid-backup: a clear error, no partial object, and the next full backup resumes', async () => {
    // Enough poorly compressible data that the copy takes a few seconds.
    for (let i = 0; i < 6; i++) {
      await stack.cluster.query(`CREATE TABLE big${i} AS SELECT g, md5(g::text) || md5(random()::text) || md5(random()::text) AS v FROM generate_series(1, 150000) g`);
    }
    await stack.cluster.query('CHECKPOINT');
    const before = await labels();
    const result = stack.admin(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast']);
    // Wait until the backup saved its resumable record with a few files, then cut the gateway.
    let label: string | undefined;
    const until = Date.now() + 120_000;
    while (!label) {
      const rec = (await objects(`openrds/backup/${stack.stanza}/`)).find((o) => o.key.endsWith('/backup.partial.copy'));
      if (rec) label = rec.key.split('/')[3];
      else if (Date.now() > until) throw new Error(`no resumable record appeared: ${JSON.stringify(await result)}`);
      else await new Promise((r) => setTimeout(r, 50));
    }
    await rgw.gatewayStop();
    let failed: Awaited<typeof result>;
    try {
      failed = await result;
    } finally {
      await rgw.gatewayStart();
    }
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toMatch(/in s3 bucket 'openrds-e2e'/);
    expect(await labels()).toEqual(before);
    // Nothing half-written is visible: every object of the interrupted set is a whole sealed file
    // (a multipart upload that was not completed is not an object).
    const setObjects = await objects(`openrds/backup/${stack.stanza}/${label}/`);
    expect(setObjects.length).toBeGreaterThan(2);

    const digest = await stack.cluster.dataDigest();
    const resumed = await stack.admin(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast']);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain(`full ${label} resuming the interrupted backup`);
    expect(await labels()).toContain(label);
    expect(await stack.adminOk(['verify', `--stanza=${stack.stanza}`, `--set=${label}`])).toContain('status: ok');
    const c = await restoreAndStart('after-resume', [`--set=${label}`, '--type=immediate', '--target-action=promote']);
    expect(await c.dataDigest()).toBe(digest);
  });
});

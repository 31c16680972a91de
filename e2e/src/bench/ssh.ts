// Backup and restore throughput through the SSH tunnel against direct mutual TLS (bench/ssh.sh),
// on the same machine, the same cluster size, alternating runs. Not a test: prints a table.
import { PgCluster } from '../harness/cluster';
import { osUser } from '../harness/processes';
import { TUNNEL_USER, sshdStart } from '../harness/sshd';
import { Stack } from '../stack';

const SCALE = Number(process.env.BENCH_SSH_SCALE ?? '20');
const RUNS = Number(process.env.BENCH_SSH_RUNS ?? '3');
const PROCESS_MAX = Number(process.env.BENCH_PROCESS_MAX ?? '2');

async function run(mode: 'tls' | 'ssh'): Promise<{ backupS: number[]; restoreS: number[]; mb: number }> {
  const sshd = mode === 'ssh' ? await sshdStart(osUser('postgres')) : undefined;
  const stack = await Stack.create({ version: 15, stanza: `b${mode}`, tls: mode === 'tls', globalOptions: {
    'process-max': String(PROCESS_MAX), 'compress-level': '1',
    ...(sshd ? { 'repo-host-type': 'ssh', 'repo-host': '127.0.0.1', 'repo-host-user': TUNNEL_USER, 'repo-host-ssh-port': String(sshd.port),
      'repo-host-ssh-key-file': sshd.keyFile, 'repo-host-ssh-known-hosts': sshd.knownHosts } : {}),
  } });
  try {
    await stack.start();
    await stack.adminOk(['stanza-create', `--stanza=${stack.stanza}`]);
    await stack.cluster.pgbench(['-i', '-s', String(SCALE), '-q']);
    await stack.cluster.query('CHECKPOINT');
    const mb = Number((await stack.cluster.query<{ s: string }>('SELECT (sum(pg_database_size(oid)) / 1048576)::text AS s FROM pg_database'))[0]!.s);
    const backupS: number[] = [];
    const restoreS: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      let t = Date.now();
      await stack.adminOk(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast']);
      backupS.push((Date.now() - t) / 1000);
      const dir = stack.restoreDir(`r${i}`);
      t = Date.now();
      await stack.adminOk(['restore', `--stanza=${stack.stanza}`, `--pg1-path=${dir}`, '--type=immediate', '--archive-mode=off']);
      restoreS.push((Date.now() - t) / 1000);
      await (await PgCluster.fromExistingDataDir(dir, { version: 15 })).destroy();
    }
    return { backupS, restoreS, mb };
  } finally {
    await stack.destroy();
    await sshd?.stop();
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const tls = await run('tls');
  const ssh = await run('ssh');
  console.log(`\npgbench -i -s ${SCALE} (${tls.mb.toFixed(0)} MB), process-max ${PROCESS_MAX}, zstd 1, ${RUNS} runs each, medians\n`);
  console.log('| transport | full backup s | MB/s | restore s | MB/s |');
  console.log('|---|---|---|---|---|');
  for (const [name, r] of [['mutual TLS, direct', tls], ['SSH tunnel (ssh2)', ssh]] as const) {
    console.log(`| ${name} | ${median(r.backupS).toFixed(1)} | ${(r.mb / median(r.backupS)).toFixed(0)} | ${median(r.restoreS).toFixed(1)} | ${(r.mb / median(r.restoreS)).toFixed(0)} |`);
  }
  console.log(`\nSSH / TLS time: backup ${(median(ssh.backupS) / median(tls.backupS)).toFixed(2)}, restore ${(median(ssh.restoreS) / median(tls.restoreS)).toFixed(2)}`);
}

main().catch((err) => { console.error(err); process.exit(1); });

// CPU profiles of the agent and the repo-server for one backup, restore and delta restore of a
// pgbench cluster or of many small tables (bench/profile.sh): where the time goes, per thread, by
// self time. Not a test.
//
//   BENCH_CPU_PROF=0 BENCH_NODE_FLAGS='--require /tmp/memwatch.js' ...: other instruments instead
//
//   BENCH_SCALE=20 BENCH_PROCESS_MAX=1 BENCH_LEVEL=3 bash bench/profile.sh
//   BENCH_DATASET=small BENCH_SMALL_TABLES=2000 BENCH_OPS=full,incr,restore bash bench/profile.sh
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PgCluster } from '../harness/cluster';
import { Stack } from '../stack';

const SCALE = Number(process.env.BENCH_SCALE ?? '20');
const PM = Number(process.env.BENCH_PROCESS_MAX ?? '1');
const LEVEL = Number(process.env.BENCH_LEVEL ?? '3');
const TOP = Number(process.env.BENCH_TOP ?? '25');
const OPS = (process.env.BENCH_OPS ?? 'full,restore,delta').split(',');
/** 'pgbench', or 'small': BENCH_SMALL_TABLES tables of a few rows in 4 databases (per-file costs dominate). */
const DATASET = process.env.BENCH_DATASET ?? 'pgbench';
const SMALL_TABLES = Number(process.env.BENCH_SMALL_TABLES ?? '2000');
/** More node flags for both processes (e.g. `--require /path/memwatch.js`), and BENCH_CPU_PROF=0 to run without the profiler. */
const EXTRA_FLAGS = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
const CPU_PROF = process.env.BENCH_CPU_PROF !== '0';

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number; children?: number[] }
interface Profile { nodes: ProfileNode[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] }

/** Self time (ms) per function of one .cpuprofile, and the profile's busy time. */
function selfTimes(file: string): { busyMs: number; wallMs: number; rows: Map<string, number> } {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const rows = new Map<string, number>();
  let busy = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i]!)!;
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
    const f = n.callFrame;
    if (f.functionName === '(idle)') continue;
    busy += dt;
    const key = `${f.functionName || '(anonymous)'} ${f.url ? `${path.basename(f.url)}:${f.lineNumber + 1}` : ''}`.trim();
    rows.set(key, (rows.get(key) ?? 0) + dt);
  }
  return { busyMs: busy, wallMs: (p.endTime - p.startTime) / 1000, rows };
}

function summarize(title: string, dir: string): void {
  if (!fs.existsSync(dir)) return;
  for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.cpuprofile')).sort()) {
    const { busyMs, wallMs, rows } = selfTimes(path.join(dir, f));
    if (busyMs < 50) continue;
    console.log(`\n## ${title} ${f}: busy ${(busyMs / 1000).toFixed(2)} s of ${(wallMs / 1000).toFixed(2)} s`);
    for (const [k, ms] of [...rows.entries()].sort((a, b) => b[1] - a[1]).slice(0, TOP)) {
      console.log(`${(ms / 1000).toFixed(3).padStart(8)} s ${((100 * ms) / busyMs).toFixed(1).padStart(5)}%  ${k}`);
    }
  }
}

async function main(): Promise<void> {
  const stack = await Stack.create({ version: 15, stanza: 'prof', globalOptions: { 'process-max': String(PM), 'compress-level': String(LEVEL) } });
  const out = path.join(stack.dir, 'profiles');
  fs.mkdirSync(out, { mode: 0o777 });
  fs.chmodSync(out, 0o777);
  try {
    await stack.start();
    await stack.adminOk(['stanza-create', `--stanza=${stack.stanza}`]);
    if (DATASET === 'small') {
      for (let d = 0; d < 4; d++) {
        await stack.cluster.query(`CREATE DATABASE bench${d}`);
        for (let i = 0; i < SMALL_TABLES / 4; i += 500) {
          await stack.cluster.query(Array.from({ length: Math.min(500, SMALL_TABLES / 4 - i) }, (_, j) =>
            `CREATE TABLE s${i + j} AS SELECT g, md5(g::text) AS v FROM generate_series(1, 20) g;`).join('\n'), [], `bench${d}`);
        }
      }
    } else {
      await stack.cluster.pgbench(['-i', '-s', String(SCALE), '-q']);
    }
    await stack.cluster.query('CHECKPOINT');
    // A first full backup that is not profiled: the delta restore needs one, and caches warm up.
    await stack.adminOk(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast']);
    const restoreDir = stack.restoreDir('prof');
    for (const op of OPS) {
      const dir = path.join(out, op);
      fs.mkdirSync(dir, { mode: 0o777 });
      fs.chmodSync(dir, 0o777);
      const prof = (who: string): string[] => (CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${dir}/${who}`] : []);
      stack.nodeFlags = { agent: [...prof('agent'), ...EXTRA_FLAGS], server: [...prof('server'), ...EXTRA_FLAGS] };
      await stack.agent!.stop('SIGTERM');
      await stack.server!.stop('SIGTERM');
      stack.agent = undefined;
      await stack.startServer();
      await stack.startAgent();
      const t = Date.now();
      if (op === 'full' || op === 'incr') {
        if (op === 'incr') {
          await stack.cluster.query('DROP TABLE IF EXISTS prof_delta; CREATE TABLE prof_delta AS SELECT g, md5(g::text) AS a FROM generate_series(1, 20000) g');
          await stack.cluster.query('CHECKPOINT');
        }
        await stack.adminOk(['backup', `--stanza=${stack.stanza}`, `--type=${op}`, '--start-fast']);
      } else {
        const args = ['restore', `--stanza=${stack.stanza}`, `--pg1-path=${restoreDir}`, '--type=immediate', '--archive-mode=off'];
        if (op === 'delta' && !fs.existsSync(restoreDir)) await stack.adminOk(args);
        await stack.adminOk(op === 'delta' ? [...args, '--delta'] : args);
      }
      const wall = (Date.now() - t) / 1000;
      await stack.agent!.stop('SIGTERM');
      await stack.server!.stop('SIGTERM');
      stack.agent = undefined;
      stack.nodeFlags = { agent: [], server: [] };
      await stack.startServer();
      await stack.startAgent();
      console.log(`\n# ${op}: ${wall.toFixed(2)} s (${DATASET === 'small' ? `${SMALL_TABLES} small tables` : `pgbench -s ${SCALE}`}, process-max ${PM}, zstd ${LEVEL})`);
      summarize('agent', path.join(dir, 'agent'));
      summarize('repo-server', path.join(dir, 'server'));
      if (op === 'restore' && !OPS.includes('delta')) await (await PgCluster.fromExistingDataDir(restoreDir, { version: 15 })).destroy();
    }
  } finally {
    // Only the profiles stay: the clusters and the repository are gigabytes per run.
    const kept = fs.mkdtempSync(path.join(os.tmpdir(), 'openrds-profiles-'));
    fs.cpSync(out, kept, { recursive: true });
    await stack.destroy();
    if (CPU_PROF) console.log(`\nprofiles: ${kept} (open in Chrome DevTools)`);
  }
}

main().catch((err) => { console.error(err); process.exit(1); });

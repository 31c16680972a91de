// The on-demand benchmark (bench/run.sh): openrds against pgBackRest, pg_basebackup and a raw
// `tar | zstd` ceiling, on the same cluster, same disk, alternating runs. Not a test: it records
// numbers (bench/results/) and ratios to the peer measured in the same run.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PG_TOOLS } from '../harness/pg-versions';
import { osUser, runCommand } from '../harness/processes';
import { Stack } from '../stack';
import { cpuOf, rssPeakMb } from './proc';
import { benchmarksSectionWrite, targetLine } from './summary';

const env = (k: string, d: string): string => process.env[k] ?? d;
const SCALE = Number(env('BENCH_SCALE', '200'));
const SMALL_TABLES = Number(env('BENCH_SMALL_TABLES', '20000'));
const RUNS = Number(env('BENCH_RUNS', '3'));
const LEVELS = env('BENCH_LEVELS', '1,3').split(',').map(Number);
const PMS = env('BENCH_PROCESS_MAX', '1,2').split(',').map(Number);
const DATASETS = env('BENCH_DATASETS', 'pgbench,small').split(',');
const OUT_DEFAULT = path.resolve(__dirname, '..', '..', '..', 'bench', 'results');
const OUT = env('BENCH_OUT', OUT_DEFAULT);

interface Sample {
  dataset: string; op: string; tool: string; level: number; pm: number; run: number;
  wallS: number; cpuS: number; mbps: number; repoBytes: number; peakRssMb: Record<string, number>; note?: string;
}

const pg = osUser('postgres');

/** Resets the peak RSS of a process (root: /proc/PID/clear_refs), so VmHWM covers one operation. */
function rssReset(pid: number): void { fs.writeFileSync(`/proc/${pid}/clear_refs`, '5'); }

function duBytes(p: string): number {
  if (!fs.existsSync(p)) return 0;
  const st = fs.lstatSync(p);
  if (!st.isDirectory()) return st.size;
  return fs.readdirSync(p).reduce((n, e) => n + duBytes(path.join(p, e)), 0);
}

/** Dirty and under-writeback page cache (kB, /proc/meminfo). */
function dirtyKb(): number {
  const m = fs.readFileSync('/proc/meminfo', 'utf8');
  return ['Dirty', 'Writeback'].reduce((n, k) => n + Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(m)?.[1] ?? 0), 0);
}

/**
 * Before each timed operation: what the previous one wrote (a restore's gigabytes, a removed
 * directory) is flushed to disk first, so that no tool pays for the writeback of another's
 * files. Every tool fsyncs what it writes itself, inside its own time.
 */
async function settle(): Promise<void> {
  await runCommand('/bin/sync', [], { timeoutMs: 600_000 });
  const until = Date.now() + 60_000;
  while (dirtyKb() > 16 * 1024 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
}

/**
 * Before a delta restore: the page cache is dropped, so that both tools check the cluster as
 * read from disk. openrds writes restored files with O_DIRECT (nothing of them stays cached) and
 * pgBackRest through the page cache (all of them stay cached): measured right after each one's
 * restore, the delta compared reads from memory with reads from disk.
 */
async function dropCaches(): Promise<void> {
  await runCommand('/bin/sync', [], { timeoutMs: 600_000 });
  fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
}

/**
 * Reads every file of a directory once, so that the page cache holds it: before a setting's full
 * backups, the source cluster is cached for every tool (a delta restore before dropped the cache;
 * the first tool would read it from disk and the others from memory).
 */
async function warm(dir: string): Promise<void> {
  const r = await runCommand('/bin/sh', ['-c', 'find "$1" -type f -exec cat {} + > /dev/null', 'warm', dir], { timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`reading ${dir} into the page cache failed: ${r.stderr.slice(-500)}`);
}

/** Runs a command under GNU time: wall, CPU (user+sys, children included) and peak RSS. */
async function timed(cmd: string, args: string[], asPostgres: boolean): Promise<{ wallS: number; cpuS: number; rssMb: number; out: string }> {
  await settle();
  const tf = `/tmp/bench-time-${process.pid}`;
  const r = await runCommand('/usr/bin/time', ['-o', tf, '-f', '%e %U %S %M', cmd, ...args],
    { env: process.env, timeoutMs: 7_200_000, ...(asPostgres ? { uid: pg.uid, gid: pg.gid, cwd: '/tmp' } : {}) });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.slice(-2000)}`);
  const [wall, user, sys, rss] = fs.readFileSync(tf, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  fs.rmSync(tf, { force: true });
  return { wallS: wall!, cpuS: user! + sys!, rssMb: Math.round(rss! / 1024), out: r.stdout + r.stderr };
}

class Bench {
  samples: Sample[] = [];
  private pgbrConf = '';
  private scratch = '';
  constructor(readonly stack: Stack, readonly dataset: string) {}

  get sourceBytes(): number { return duBytes(path.join(this.stack.cluster.dataDir, 'base')) + duBytes(path.join(this.stack.cluster.dataDir, 'global')); }

  async setup(): Promise<void> {
    const s = this.stack;
    this.scratch = path.join(s.dir, 'bench');
    fs.mkdirSync(this.scratch, { recursive: true });
    fs.chownSync(this.scratch, pg.uid, pg.gid);
    for (const d of ['pgbr-repo', 'pgbr-log', 'pgbr-lock', 'out']) {
      fs.mkdirSync(path.join(this.scratch, d), { recursive: true });
      fs.chownSync(path.join(this.scratch, d), pg.uid, pg.gid);
    }
    this.pgbrConf = path.join(this.scratch, 'pgbackrest.conf');
    fs.writeFileSync(this.pgbrConf, ['[global]', `repo1-path=${this.scratch}/pgbr-repo`, `log-path=${this.scratch}/pgbr-log`,
      `lock-path=${this.scratch}/pgbr-lock`, 'log-level-console=warn', 'log-level-file=off', 'repo1-retention-full=1', 'start-fast=y',
      'compress-type=zst', '', '[bench]', `pg1-path=${s.cluster.dataDir}`, `pg1-port=${s.cluster.port}`, `pg1-socket-path=${s.cluster.socketDir}`, ''].join('\n'));
    fs.chmodSync(this.pgbrConf, 0o644);
    await this.pgbr(['stanza-create']);
    // Both tools archive every segment: each backup waits for its own WAL, as in production.
    const openrds = (await s.cluster.query<{ archive_command: string }>('SHOW archive_command'))[0]!.archive_command;
    await s.cluster.query(`ALTER SYSTEM SET archive_command = '${`${openrds} && pgbackrest --config=${this.pgbrConf} --stanza=bench archive-push %p`.replace(/'/g, "''")}'`);
    await s.cluster.query('SELECT pg_reload_conf()');
  }

  pgbr(args: string[]): ReturnType<typeof timed> {
    return timed('/usr/bin/pgbackrest', [`--config=${this.pgbrConf}`, '--stanza=bench', ...args], true);
  }

  private record(op: string, tool: string, level: number, pm: number, run: number, t: { wallS: number; cpuS: number }, bytes: number,
    repoBytes: number, peakRssMb: Record<string, number>, note?: string): void {
    const sample: Sample = { dataset: this.dataset, op, tool, level, pm, run, wallS: t.wallS, cpuS: Number(t.cpuS.toFixed(2)),
      mbps: Number((bytes / 1e6 / t.wallS).toFixed(1)), repoBytes, peakRssMb, ...(note ? { note } : {}) };
    this.samples.push(sample);
    console.log(JSON.stringify(sample));
  }

  /** One openrds admin command; CPU and peak RSS of the agent and the repo-server around it. */
  async openrds(args: string[]): Promise<{ wallS: number; cpuS: number; rss: Record<string, number>; out: string }> {
    await settle();
    const pids = { agent: this.stack.agent!.pid, server: this.stack.server!.pid };
    for (const p of Object.values(pids)) rssReset(p);
    const cpu0 = cpuOf(pids.agent) + cpuOf(pids.server);
    const start = process.hrtime.bigint();
    const r = await this.stack.admin([...args, `--stanza=${this.stack.stanza}`, '--log-level-console=warn'], { timeoutMs: 7_200_000 });
    const wallS = Number(process.hrtime.bigint() - start) / 1e9;
    if (r.code !== 0) throw new Error(`openrds-admin ${args.join(' ')} exited ${r.code}: ${r.stderr.slice(-2000)}`);
    const cpuS = cpuOf(pids.agent) + cpuOf(pids.server) - cpu0;
    return { wallS, cpuS, rss: { agent: rssPeakMb(pids.agent), server: rssPeakMb(pids.server) }, out: r.stdout + r.stderr };
  }

  async latestOpenrds(): Promise<string> {
    const info = JSON.parse((await this.stack.adminOk(['info', `--stanza=${this.stack.stanza}`, '--output=json'])))[0].backup;
    return info[info.length - 1].label;
  }

  async fullBackups(level: number, pm: number, run: number): Promise<void> {
    const bytes = this.sourceBytes;
    const tools = ['openrds', 'pgbackrest', 'pg_basebackup', 'tar-zstd'];
    // Alternate the order between runs so that no tool always runs on a warm (or cold) cache.
    const order = run % 2 === 0 ? tools : tools.toReversed();
    await warm(this.stack.cluster.dataDir);
    for (const tool of order) {
      if (tool === 'openrds') {
        const t = await this.openrds(['backup', '--type=full', '--start-fast', `--compress-level=${level}`, `--process-max=${pm}`]);
        const label = await this.latestOpenrds();
        this.record('full', tool, level, pm, run, t, bytes, duBytes(path.join(this.stack.dir, 'repo', 'backup', this.stack.stanza, label)), t.rss);
      } else if (tool === 'pgbackrest') {
        const t = await this.pgbr(['backup', '--type=full', `--compress-level=${level}`, `--process-max=${pm}`]);
        const repo = path.join(this.scratch, 'pgbr-repo', 'backup', 'bench');
        const label = fs.readdirSync(repo).filter((n) => n.endsWith('F')).sort().pop()!;
        this.record('full', tool, level, pm, run, t, bytes, duBytes(path.join(repo, label)), { pgbackrest: t.rssMb });
      } else if (tool === 'pg_basebackup') {
        const dir = path.join(this.scratch, 'out', 'basebackup');
        fs.rmSync(dir, { recursive: true, force: true });
        const t = await timed(path.join(PG_TOOLS, 'pg_basebackup'), ['-h', this.stack.cluster.socketDir, '-p', String(this.stack.cluster.port),
          '-U', 'postgres', '-D', dir, '-Ft', '-X', 'fetch', '-c', 'fast', `--compress=server-zstd:level=${level}${pm > 1 ? `,workers=${pm}` : ''}`], true);
        this.record('full', tool, level, pm, run, t, bytes, duBytes(dir), { pg_basebackup: t.rssMb }, 'CPU of the client only (compression runs in the walsender)');
        fs.rmSync(dir, { recursive: true, force: true });
      } else {
        const file = path.join(this.scratch, 'out', 'pgdata.tar.zst');
        const t = await timed('/bin/bash', ['-c', `tar -cf - -C '${this.stack.cluster.dataDir}' . 2>/dev/null | zstd -q -T${pm} -${level} -o '${file}' -f`], false);
        this.record('full', tool, level, pm, run, t, bytes, duBytes(file), { 'tar+zstd': t.rssMb }, 'raw ceiling: no checksums, not consistent');
        fs.rmSync(file, { force: true });
      }
    }
  }

  /** ~1% of the cluster changed, then incremental backups of both tools (after a full of each). */
  async incrBackups(level: number, pm: number, run: number): Promise<void> {
    const bytes = this.sourceBytes;
    const rows = Math.max(1000, Math.round(bytes / 100 / 120));
    await this.stack.cluster.query(`DROP TABLE IF EXISTS bench_delta; CREATE TABLE bench_delta AS SELECT g, md5(g::text) AS a, md5((g+1)::text) AS b FROM generate_series(1, ${rows}) g`);
    await this.stack.cluster.query('CHECKPOINT');
    const order = run % 2 === 0 ? ['openrds', 'pgbackrest'] : ['pgbackrest', 'openrds'];
    for (const tool of order) {
      if (tool === 'openrds') {
        const t = await this.openrds(['backup', '--type=incr', '--start-fast', `--compress-level=${level}`, `--process-max=${pm}`]);
        const label = await this.latestOpenrds();
        this.record('incr', tool, level, pm, run, t, bytes, duBytes(path.join(this.stack.dir, 'repo', 'backup', this.stack.stanza, label)), t.rss);
      } else {
        const t = await this.pgbr(['backup', '--type=incr', `--compress-level=${level}`, `--process-max=${pm}`]);
        const repo = path.join(this.scratch, 'pgbr-repo', 'backup', 'bench');
        const label = fs.readdirSync(repo).filter((n) => n.endsWith('I')).sort().pop()!;
        this.record('incr', tool, level, pm, run, t, bytes, duBytes(path.join(repo, label)), { pgbackrest: t.rssMb });
      }
    }
  }

  /** Restore of the latest backup into an empty directory, then a delta restore over it. */
  async restores(level: number, pm: number, run: number): Promise<void> {
    const bytes = this.sourceBytes;
    const order = run % 2 === 0 ? ['openrds', 'pgbackrest'] : ['pgbackrest', 'openrds'];
    for (const tool of order) {
      const dir = path.join(this.scratch, 'out', `restore-${tool}`);
      fs.rmSync(dir, { recursive: true, force: true });
      if (tool === 'openrds') {
        const args = ['restore', `--pg1-path=${dir}`, `--process-max=${pm}`, '--type=immediate', '--archive-mode=off'];
        const t = await this.openrds(args);
        this.record('restore', tool, level, pm, run, t, bytes, 0, t.rss);
        await dropCaches();
        const d = await this.openrds([...args, '--delta']);
        this.record('restore-delta', tool, level, pm, run, d, bytes, 0, d.rss);
      } else {
        const args = ['restore', `--pg1-path=${dir}`, `--process-max=${pm}`, '--type=immediate'];
        fs.mkdirSync(dir, { mode: 0o700 });
        fs.chownSync(dir, pg.uid, pg.gid);
        const t = await this.pgbr(args);
        this.record('restore', tool, level, pm, run, t, bytes, 0, { pgbackrest: t.rssMb });
        await dropCaches();
        const d = await this.pgbr([...args, '--delta']);
        this.record('restore-delta', tool, level, pm, run, d, bytes, 0, { pgbackrest: d.rssMb });
      }
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function report(samples: Sample[], meta: Record<string, unknown>): string {
  const lines = ['# openrds benchmark', '', '```json', JSON.stringify(meta, null, 2), '```', '',
    'Medians over the runs. ratio = openrds wall time / pgBackRest wall time in the same run set (< 1: openrds is faster).', '',
    '| dataset | op | level | process-max | tool | wall s | CPU s | MB/s | repo MB | peak RSS MB | ratio |', '|---|---|---|---|---|---|---|---|---|---|---|'];
  const keys = [...new Set(samples.map((s) => `${s.dataset}|${s.op}|${s.level}|${s.pm}`))];
  for (const k of keys) {
    const group = samples.filter((s) => `${s.dataset}|${s.op}|${s.level}|${s.pm}` === k);
    const peer = group.filter((s) => s.tool === 'pgbackrest');
    const peerWall = peer.length ? median(peer.map((s) => s.wallS)) : undefined;
    for (const tool of new Set(group.map((s) => s.tool))) {
      const g = group.filter((s) => s.tool === tool);
      const wall = median(g.map((s) => s.wallS));
      const rss = Object.entries(g[0]!.peakRssMb).map(([p]) => `${p} ${Math.max(...g.map((s) => s.peakRssMb[p] ?? 0))}`).join(', ');
      const [dataset, op, level, pm] = k.split('|');
      lines.push(`| ${dataset} | ${op} | ${level} | ${pm} | ${tool} | ${wall.toFixed(2)} | ${median(g.map((s) => s.cpuS)).toFixed(2)} | ` +
        `${median(g.map((s) => s.mbps)).toFixed(0)} | ${(median(g.map((s) => s.repoBytes)) / 1e6).toFixed(1)} | ${rss} | ` +
        `${peerWall && tool !== 'pgbackrest' ? (wall / peerWall).toFixed(2) : ''} |`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** The issue's targets checked against the medians of a run, and the ratio matrix, for BENCHMARKS.md. */
function summary(samples: Sample[], meta: Record<string, unknown>, resultFile: string): string {
  const med = (dataset: string, op: string, level: number, pm: number, tool: string): number | undefined => {
    const g = samples.filter((s) => s.dataset === dataset && s.op === op && s.level === level && s.pm === pm && s.tool === tool);
    return g.length ? median(g.map((s) => s.wallS)) : undefined;
  };
  const ratio = (dataset: string, op: string, level: number, pm: number, peer = 'pgbackrest'): number | undefined => {
    const a = med(dataset, op, level, pm, 'openrds'), b = med(dataset, op, level, pm, peer);
    return a !== undefined && b !== undefined ? a / b : undefined;
  };
  const fmt = (x: number | undefined): string => (x === undefined ? '–' : x.toFixed(2));
  const ops = ['full', 'incr', 'restore', 'restore-delta'];
  const lines = [`## Engine: backup and restore against pgBackRest (\`bash bench/run.sh\`)`, '',
    `Run of ${String(meta.date)}: pgbench scale ${String(meta.scale)} (${String(meta.pgbenchSourceMB ?? '–')} MB) and ${String(meta.smallTables)} small tables `
    + `(${String(meta.smallSourceMB ?? '–')} MB), ${String(meta.runs)} runs each, ${String(meta.cpus)} cores, ${String(meta.pgbackrest)}, openrds at ${String(meta.commit)}. `
    + `Full results: \`bench/results/${resultFile}\`. ${String(meta.mergedNote ?? '')}`.trimEnd(), '',
    'Median wall time of openrds / pgBackRest in the same run (< 1: openrds is faster):', '',
    `| dataset | zst level | process-max | ${ops.join(' | ')} |`, `|---|---|---|${ops.map(() => '---').join('|')}|`];
  const datasets = [...new Set(samples.map((s) => s.dataset))];
  const levels = [...new Set(samples.map((s) => s.level))], pms = [...new Set(samples.map((s) => s.pm))];
  for (const d of datasets) for (const l of levels) for (const p of pms) lines.push(`| ${d} | ${l} | ${p} | ${ops.map((o) => fmt(ratio(d, o, l, p))).join(' | ')} |`);
  const all = (xs: (number | undefined)[], ok: (x: number) => boolean): boolean | undefined => (xs.some((x) => x === undefined) || xs.length === 0 ? undefined : xs.every((x) => ok(x!)));
  const across = (d: string, op: string): (number | undefined)[] => levels.flatMap((l) => pms.map((p) => ratio(d, op, l, p)));
  const range = (xs: (number | undefined)[]): string => { const v = xs.filter((x): x is number => x !== undefined); return v.length ? `${Math.min(...v).toFixed(2)}–${Math.max(...v).toFixed(2)}` : '–'; };
  const rssMax = Math.max(0, ...samples.filter((s) => s.tool === 'openrds' && s.dataset === 'small').flatMap((s) => Object.values(s.peakRssMb)));
  const tarRatio = ratio('pgbench', 'full', 1, 2, 'tar-zstd');
  lines.push('', 'Targets of the engine issue (ratios: openrds / pgBackRest, medians):', '', '| target | measured | |', '|---|---|---|',
    targetLine('full backup ≤ 0.9 (pgbench, every level and process-max)', range(across('pgbench', 'full')), all(across('pgbench', 'full'), (x) => x <= 0.9)),
    targetLine('restore ≤ 0.9', range(across('pgbench', 'restore')), all(across('pgbench', 'restore'), (x) => x <= 0.9)),
    targetLine('delta restore of an unchanged cluster ≤ 0.9 (page cache dropped before it, for both tools)', range(across('pgbench', 'restore-delta')), all(across('pgbench', 'restore-delta'), (x) => x <= 0.9)),
    targetLine('incremental with ~1% changed ≤ 1.0', range(across('pgbench', 'incr')), all(across('pgbench', 'incr'), (x) => x <= 1)),
    targetLine('many small files ≤ 1.0 (full, incr, restore)', range([...across('small', 'full'), ...across('small', 'incr'), ...across('small', 'restore')]),
      all([...across('small', 'full'), ...across('small', 'incr'), ...across('small', 'restore')], (x) => x <= 1)),
    targetLine('peak RSS of each openrds process ≤ 300 MB (small files)', rssMax ? `${rssMax} MB` : '–', rssMax ? rssMax <= 300 : undefined),
    targetLine('process-max 2, zst 1: throughput ≥ 70% of `tar \\| zstd -1 -T2`', tarRatio === undefined ? '–' : `${(100 / tarRatio).toFixed(0)}%`,
      tarRatio === undefined ? undefined : 1 / tarRatio >= 0.7));
  return lines.join('\n');
}

async function main(): Promise<void> {
  const all: Sample[] = [];
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const meta: Record<string, unknown> = { date: new Date().toISOString(), scale: SCALE, smallTables: SMALL_TABLES, runs: RUNS, levels: LEVELS, processMax: PMS,
    cpus: (await import('node:os')).cpus().length, node: process.version,
    commit: (await runCommand('git', ['-C', path.resolve(__dirname, '..', '..', '..'), 'rev-parse', '--short', 'HEAD'], {})).stdout.trim(), pgbackrest: (await runCommand('/usr/bin/pgbackrest', ['version'], {})).stdout.trim() };
  for (const dataset of DATASETS) {
    const stack = await Stack.create({ version: 15, stanza: 'bench', globalOptions: { 'repo1-retention-full': '1' } });
    try {
      await stack.start();
      await stack.adminOk(['stanza-create', `--stanza=${stack.stanza}`]);
      const bench = new Bench(stack, dataset);
      await bench.setup();
      if (dataset === 'pgbench') {
        await stack.cluster.pgbench(['-i', '-s', String(SCALE), '-q']);
      } else {
        // Many small relations across several databases: per-file overhead dominates.
        const dbs = 4;
        for (let d = 0; d < dbs; d++) {
          await stack.cluster.query(`CREATE DATABASE bench${d}`);
          const per = Math.ceil(SMALL_TABLES / dbs);
          for (let i = 0; i < per; i += 500) {
            const sql = Array.from({ length: Math.min(500, per - i) }, (_, j) => `CREATE TABLE s${i + j} AS SELECT g, md5(g::text) AS v FROM generate_series(1, 20) g;`).join('\n');
            await stack.cluster.query(sql, [], `bench${d}`);
          }
        }
      }
      await stack.cluster.query('CHECKPOINT');
      // The load's WAL is archived (by both tools) before anything is measured: a backlog being
      // pushed would take CPU from whichever tool runs first.
      await stack.cluster.query('SELECT pg_switch_wal()');
      const statusDir = path.join(stack.cluster.dataDir, 'pg_wal', 'archive_status');
      const drainUntil = Date.now() + 3_600_000;
      while (fs.readdirSync(statusDir).some((n) => n.endsWith('.ready'))) {
        if (Date.now() > drainUntil) throw new Error('the WAL of the load was not archived within an hour');
        await new Promise((r) => setTimeout(r, 1000));
      }
      meta[`${dataset}SourceMB`] = Math.round(bench.sourceBytes / 1e6);
      for (const level of LEVELS) {
        for (const pm of PMS) {
          for (let run = 0; run < RUNS; run++) {
            await bench.fullBackups(level, pm, run);
            await bench.incrBackups(level, pm, run);
            await bench.restores(level, pm, run);
          }
        }
      }
      all.push(...bench.samples);
      writeResults(all, meta, stamp);
    } finally {
      await stack.destroy();
    }
  }
}

/**
 * Results so far into bench/results/<stamp>.json and .md (after each dataset, so that a long run
 * cut short keeps what it measured), and the summary into BENCHMARKS.md.
 */
function writeResults(all: Sample[], meta: Record<string, unknown>, stamp: string): void {
  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(path.join(OUT, `${stamp}.json`), JSON.stringify({ meta, samples: all }, null, 2));
  const md = report(all, meta);
  fs.writeFileSync(path.join(OUT, `${stamp}.md`), md);
  console.log(md);
  // BENCH_MERGE=<an earlier results .json>: the summary also shows that run's other datasets (a
  // rerun of one dataset keeps the other's figures, each dataset's ratios from one run).
  const merge = process.env.BENCH_MERGE;
  let forSummary = all, summaryMeta = meta;
  if (merge) {
    const earlier = JSON.parse(fs.readFileSync(merge, 'utf8')) as { meta: Record<string, unknown>; samples: Sample[] };
    const kept = earlier.samples.filter((x) => !DATASETS.includes(x.dataset));
    const keptDatasets = [...new Set(kept.map((x) => x.dataset))];
    forSummary = [...kept, ...all];
    summaryMeta = { ...earlier.meta, ...meta, ...Object.fromEntries(keptDatasets.map((d) => [`${d}SourceMB`, earlier.meta[`${d}SourceMB`]])),
      mergedNote: `The ${keptDatasets.join(', ')} figures are from \`bench/results/${path.basename(merge, '.json')}.md\` (openrds at ${String(earlier.meta.commit)}, ${String(earlier.meta.runs)} runs), the rest from this run. ` };
  }
  const text = summary(forSummary, summaryMeta, `${stamp}.md`);
  console.log(text);
  // BENCHMARKS.md keeps the latest run written to the repository's results directory.
  if (OUT === OUT_DEFAULT) benchmarksSectionWrite('engine', text);
}

main().catch((err) => { console.error(err); process.exit(1); });

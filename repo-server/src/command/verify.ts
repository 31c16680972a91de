import {
  VerifyError, forEachLimit, infoFileLoadOne, log, manifestLoad, walFileKind, walHeaderParse,
  walSegmentNext,
} from '@openrds/common';
import { COMPRESS_EXTENSION_RE, checksumTypeOf, compressTypeOf } from '@openrds/common';
import type { CompressType, ManifestFile } from '@openrds/common';
import { archiveIdOf } from '../repo/repo';
import { reposSelected } from '../repo/repo-set';
import { contentDigest } from '../repo/digest';
import { fmtBytes } from './backup/backup';
import type { CommandContext, CommandOutput } from './context';

const LISTED_MAX = 100;

export interface VerifyReport {
  stanza: string;
  status: 'ok' | 'error';
  infoFiles: { file: string; status: 'ok' | 'missing' | 'invalid' | 'differs' }[];
  archive: { archiveId: string; files: number; bytes: number; bad: string[]; gaps: { timeline: number; after: string; before: string }[] }[];
  backups: { label: string; files: number; bytes: number; bad: string[]; walMissing: string[] }[];
}

/** Both copies of an info file (or manifest) must load and agree. */
async function infoCheck(ctx: CommandContext, key: string): Promise<VerifyReport['infoFiles'][number]> {
  const load = async (k: string): Promise<string | 'missing' | 'invalid'> => {
    try {
      return JSON.stringify(await infoFileLoadOne(ctx.repo.storage, k));
    } catch (err) {
      return (err as Error).name === 'FileMissingError' ? 'missing' : 'invalid';
    }
  };
  const [main, copy] = [await load(key), await load(`${key}.copy`)];
  if (main === 'missing' || copy === 'missing') return { file: main === 'missing' ? key : `${key}.copy`, status: 'missing' };
  if (main === 'invalid' || copy === 'invalid') return { file: main === 'invalid' ? key : `${key}.copy`, status: 'invalid' };
  return { file: key, status: main === copy ? 'ok' : 'differs' };
}

function compressOf(name: string): CompressType {
  return compressTypeOf(name);
}

/**
 * `verify`: re-reads every file of the stanza's WAL archive and backups, decompressing and hashing
 * it, and compares with the sha256 in its name (WAL) or its manifest (backups); checks info files
 * against their copies; reports WAL gaps per timeline and backups whose WAL is incomplete.
 * Completes with a report either way; the exit code is non-zero when anything is wrong.
 */
export async function verify(ctx: CommandContext): Promise<CommandOutput> {
  const targets = reposSelected(ctx.repos, ctx.config);
  if (targets.length === 1) return verifyRepo({ ...ctx, ...targets[0]! });
  const outs: CommandOutput[] = [];
  for (const t of targets) outs.push(await verifyRepo({ ...ctx, ...t }));
  return {
    text: outs.map((o, i) => `repo${targets[i]!.repo.key}:\n${o.text.replace(/^/gm, '  ').replace(/ +$/, '')}`).join(''),
    json: outs.map((o, i) => ({ repo: targets[i]!.repo.key, ...(o.json as object) })),
    exitCode: Math.max(...outs.map((o) => o.exitCode ?? 0)),
  };
}

/** verify of one repository (ctx.repo). */
async function verifyRepo(ctx: CommandContext): Promise<CommandOutput> {
  const { repo } = ctx;
  const stanza = ctx.config.str('stanza');
  const onlySet = ctx.config.strOpt('set');
  const report: VerifyReport = { stanza, status: 'ok', infoFiles: [], archive: [], backups: [] };
  report.infoFiles.push(await infoCheck(ctx, repo.archiveInfoKey(stanza)), await infoCheck(ctx, repo.backupInfoKey(stanza)));
  const archiveInfo = await repo.archiveInfoLoad(stanza);
  const backupInfo = await repo.backupInfoLoad(stanza);

  const keys = await repo.cipher.lookup(stanza);
  // Files are re-read a few at a time: an object store answers each after a round trip.
  const parallel = repo.storage.type === 'posix' ? 2 : 16;
  const segmentsByArchive = new Map<string, Set<string>>();
  for (const db of archiveInfo.history) {
    const archiveId = archiveIdOf(db);
    const entry = { archiveId, files: 0, bytes: 0, bad: [] as string[], gaps: [] as VerifyReport['archive'][number]['gaps'] };
    const segments = new Set<string>();
    let segSize = 0;
    const base = repo.archiveIdPath(stanza, archiveId);
    const dirs = await repo.storage.list(base);
    for (const dir of dirs) {
      const isHistory = new RegExp(`\\.history${COMPRESS_EXTENSION_RE}?$`).test(dir);
      const names = isHistory ? [dir] : /^[0-9A-F]{16}$/.test(dir) ? (await repo.storage.list(`${base}/${dir}`)).map((n) => `${dir}/${n}`) : [];
      await forEachLimit(names, parallel, async (rel) => {
        const name = rel.split('/').pop()!;
        const m = new RegExp(`^(.+?)(?:-([0-9a-f]{64}))?${COMPRESS_EXTENSION_RE}?$`).exec(name)!;
        const walName = m[1]!;
        entry.files++;
        try {
          const d = await contentDigest(ctx.repo.storage, `${base}/${rel}`, compressOf(name), keys);
          entry.bytes += d.size;
          if (m[2] && d.sha256 !== m[2]) throw new Error(`sha256 ${d.sha256} does not match its name`);
          if (walFileKind(walName) === 'segment') {
            const h = walHeaderParse(d.head);
            if (h.systemId !== db.systemId) throw new Error(`system-id ${h.systemId} is not the stanza's ${db.systemId}`);
            segSize = h.segmentSize;
            segments.add(walName);
          }
        } catch (err) {
          if (entry.bad.length < LISTED_MAX) entry.bad.push(`${rel}: ${(err as Error).message}`);
          else if (entry.bad[entry.bad.length - 1] !== '...') entry.bad.push('...');
        }
      });
    }
    // Gaps: consecutive segments on a timeline must follow each other.
    if (segSize > 0) {
      const byTimeline = new Map<number, string[]>();
      for (const s of segments) {
        const tli = parseInt(s.slice(0, 8), 16);
        byTimeline.set(tli, [...(byTimeline.get(tli) ?? []), s]);
      }
      for (const [timeline, list] of byTimeline) {
        list.sort();
        for (let i = 1; i < list.length; i++) {
          if (walSegmentNext(list[i - 1]!, segSize) !== list[i]) entry.gaps.push({ timeline, after: list[i - 1]!, before: list[i]! });
        }
      }
    }
    segmentsByArchive.set(archiveId, segments);
    if (entry.files > 0 || db.id === archiveInfo.db.id) report.archive.push(entry);
  }

  for (const b of backupInfo.backups.filter((x) => !onlySet || x.label === onlySet)) {
    const entry = { label: b.label, files: 0, bytes: 0, bad: [] as string[], walMissing: [] as string[] };
    report.infoFiles.push(await infoCheck(ctx, repo.manifestKey(stanza, b.label)));
    try {
      const manifest = await manifestLoad(repo.storage, repo.manifestKey(stanza, b.label));
      const compressType = manifest.options.compressType;
      await forEachLimit(manifest.files as ManifestFile[], parallel, async (f) => {
        entry.files++;
        if (f.size === 0) return;
        const key = repo.backupFileKey(stanza, f.reference ?? b.label, f.name, compressType);
        try {
          const d = await contentDigest(ctx.repo.storage, key, compressType, keys, checksumTypeOf(f.sha256));
          entry.bytes += d.size;
          if (d.sha256 !== f.sha256 || d.size !== f.size) throw new Error(`size ${d.size} checksum ${d.sha256}, manifest says size ${f.size} checksum ${f.sha256}`);
        } catch (err) {
          if (entry.bad.length < LISTED_MAX) entry.bad.push(`${f.name}: ${(err as Error).message}`);
        }
      });
      entry.bad.sort();
      // The WAL that makes the backup consistent must still be archived.
      const segs = segmentsByArchive.get(b.archiveId) ?? new Set<string>();
      let seg = b.walStart;
      for (let i = 0; i < 100_000; i++) {
        if (!segs.has(seg)) entry.walMissing.push(seg);
        if (seg >= b.walStop) break;
        seg = walSegmentNext(seg, manifest.db.walSegmentSize);
      }
    } catch (err) {
      entry.bad.push(`backup.manifest: ${(err as Error).message}`);
    }
    report.backups.push(entry);
  }

  const problems = report.infoFiles.filter((i) => i.status !== 'ok').length
    + report.archive.reduce((n, a) => n + a.bad.length + a.gaps.length, 0)
    + report.backups.reduce((n, b) => n + b.bad.length + b.walMissing.length, 0);
  report.status = problems === 0 ? 'ok' : 'error';

  const lines = [`stanza: ${stanza}`, `    status: ${report.status}${problems ? ` (${problems} problem(s))` : ''}`];
  for (const i of report.infoFiles.filter((x) => x.status !== 'ok')) lines.push(`    info file '${i.file}': ${i.status}`);
  for (const a of report.archive) {
    lines.push(`    archive ${a.archiveId}: ${a.files} files, ${fmtBytes(a.bytes)}, ${a.bad.length} bad, ${a.gaps.length} gap(s)`);
    for (const x of a.bad) lines.push(`        bad: ${x}`);
    for (const g of a.gaps) lines.push(`        gap on timeline ${g.timeline}: after ${g.after}, next is ${g.before}`);
  }
  for (const b of report.backups) {
    lines.push(`    backup ${b.label}: ${b.files} files, ${fmtBytes(b.bytes)}, ${b.bad.length} bad${b.walMissing.length ? `, WAL missing: ${b.walMissing.join(', ')}` : ''}`);
    for (const x of b.bad) lines.push(`        bad: ${x}`);
  }
  if (problems) log.error(`verify found ${problems} problem(s) in stanza '${stanza}'`);
  else log.info(`verify of stanza '${stanza}' found no problem`);
  return { text: `${lines.join('\n')}\n`, json: report, exitCode: problems ? VerifyError.code : 0 };
}

import { StanzaMissingError } from '@openrds/common';
import { archiveIdOf, type BackupInfoEntry } from '../repo/repo';
import { reposSelected } from '../repo/repo-set';
import { fmtBytes } from './backup/backup';
import type { CommandContext, CommandOutput } from './context';

/** pgBackRest's `info --output=json` shape, so that monitoring written for it reads ours. */
export interface StanzaInfoJson {
  name: string;
  status: { code: number; message: string; lock: { backup: { held: boolean } } };
  cipher: string;
  db: { id: number; 'repo-key': number; 'system-id': string; version: string }[];
  archive: { database: { id: number; 'repo-key': number }; id: string; max: string | null; min: string | null }[];
  backup: {
    label: string; type: string; prior: string | null; reference: string[] | null; error: boolean;
    timestamp: { start: number; stop: number };
    lsn: { start: string; stop: string };
    archive: { start: string; stop: string };
    info: { size: number; delta: number; repository: { size: number; delta: number } };
    database: { id: number; 'repo-key': number };
  }[];
  repo: { key: number; cipher: string; status: { code: number; message: string } }[];
  /** Asynchronous archiving on the database host (archive-async=y): its backlog as the agent last reported it. */
  'archive-async'?: { ready: number; 'ready-bytes': number; oldest: string | null; failing: number; 'reported-at': number };
}

function fmtTime(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, '+00');
}

async function stanzaInfo(ctx: CommandContext, stanza: string): Promise<StanzaInfoJson> {
  const key = ctx.repo.key;
  const backupInfo = await ctx.repo.backupInfoLoad(stanza);
  const archiveInfo = await ctx.repo.archiveInfoLoad(stanza);
  const archive: StanzaInfoJson['archive'] = [];
  for (const db of archiveInfo.history) {
    const id = archiveIdOf(db);
    const range = await ctx.archive.range(stanza, id);
    if (range || db.id === archiveInfo.db.id) archive.push({ database: { id: db.id, 'repo-key': key }, id, min: range?.min ?? null, max: range?.max ?? null });
  }
  const backups = backupInfo.backups.map((b: BackupInfoEntry) => ({
    label: b.label, type: b.type, prior: b.prior ?? null, reference: b.reference ?? null, error: false,
    timestamp: { start: Math.floor(b.timestampStart / 1000), stop: Math.floor(b.timestampStop / 1000) },
    lsn: { start: b.lsnStart, stop: b.lsnStop },
    archive: { start: b.walStart, stop: b.walStop },
    info: { size: b.size, delta: b.delta, repository: { size: b.repoSize, delta: b.repoDelta } },
    database: { id: b.dbId, 'repo-key': key },
  }));
  const status = backups.length === 0 ? { code: 2, message: 'no valid backups' } : { code: 0, message: 'ok' };
  return {
    name: stanza,
    status: { ...status, lock: { backup: { held: false } } },
    cipher: ctx.repo.cipher.type,
    db: backupInfo.history.map((d) => ({ id: d.id, 'repo-key': key, 'system-id': d.systemId, version: String(d.pgVersion) })),
    archive,
    backup: backups,
    repo: [{ key, cipher: ctx.repo.cipher.type, status }],
  };
}

/** One stanza's info across repositories: the first repository with the stanza gives db and status. */
function stanzaMerge(parts: StanzaInfoJson[]): StanzaInfoJson {
  if (parts.length === 1) return parts[0]!;
  const main = parts.find((p) => p.status.code !== 1) ?? parts[0]!;
  const ok = parts.some((p) => p.status.code === 0);
  return {
    ...main,
    status: ok ? { code: 0, message: 'ok', lock: main.status.lock } : main.status,
    cipher: [...new Set(parts.map((p) => p.cipher))].join(','),
    archive: parts.flatMap((p) => p.archive),
    backup: parts.flatMap((p) => p.backup).sort((a, b) => a.timestamp.start - b.timestamp.start),
    repo: parts.flatMap((p) => p.repo),
  };
}

function stanzaText(s: StanzaInfoJson, set: string | undefined): string {
  const lines = [`stanza: ${s.name}`, `    status: ${s.status.code === 0 ? 'ok' : `error (${s.status.message})`}`, `    cipher: ${s.cipher}`];
  const spool = s['archive-async'];
  if (spool) {
    lines.push(`    archive-async: ${spool.ready} WAL file(s) waiting on the database host (${fmtBytes(spool['ready-bytes'])})` +
      `${spool.oldest ? `, oldest ${spool.oldest}` : ''}${spool.failing ? `, ${spool.failing} failing` : ''} (reported ${fmtTime(spool['reported-at'] * 1000)})`);
  }
  const current = s.db[s.db.length - 1];
  const dbIds = [...new Set(s.archive.map((a) => a.database.id))];
  for (const dbId of dbIds) {
    lines.push('', `    db (${dbId === current?.id ? 'current' : 'prior'})`);
    for (const a of s.archive.filter((x) => x.database.id === dbId)) {
      const repoName = s.repo.length > 1 ? `repo${a.database['repo-key']}: ` : '';
      lines.push(`        ${repoName}wal archive min/max (${a.id}): ${a.min && a.max ? `${a.min}/${a.max}` : 'none present'}`);
    }
    for (const b of s.backup.filter((x) => x.database.id === dbId && (!set || x.label === set))) {
      lines.push('', `        ${b.type} backup: ${b.label}`);
      lines.push(`            timestamp start/stop: ${fmtTime(b.timestamp.start * 1000)} / ${fmtTime(b.timestamp.stop * 1000)}`);
      lines.push(`            wal start/stop: ${b.archive.start} / ${b.archive.stop}`);
      if (b.prior) lines.push(`            prior: ${b.prior}${b.reference?.length ? `, backup reference list: ${b.reference.join(', ')}` : ''}`);
      lines.push(`            lsn start/stop: ${b.lsn.start} / ${b.lsn.stop}`);
      lines.push(`            database size: ${fmtBytes(b.info.size)}, database backup size: ${fmtBytes(b.info.delta)}`);
      lines.push(`            repo${b.database['repo-key']}: backup set size: ${fmtBytes(b.info.repository.size)}, backup size: ${fmtBytes(b.info.repository.delta)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** `info`: the stanzas (or one), their WAL archive range and backups, as text or pgBackRest-shaped JSON. */
export async function info(ctx: CommandContext): Promise<CommandOutput> {
  const stanza = ctx.config.strOpt('stanza');
  const targets = reposSelected(ctx.repos, ctx.config);
  const stanzas = stanza ? [stanza] : [...new Set((await Promise.all(targets.map((t) => t.repo.stanzaList()))).flat())].sort();
  const result: StanzaInfoJson[] = [];
  for (const s of stanzas) {
    // One entry per stanza, with the backups and archive of every repository (each names its repo-key).
    const parts: StanzaInfoJson[] = [];
    for (const t of targets) {
      try {
        parts.push(await stanzaInfo({ ...ctx, ...t }, s));
      } catch (err) {
        if (!(err instanceof StanzaMissingError)) throw err;
        parts.push({
          name: s, status: { code: 1, message: 'missing stanza path', lock: { backup: { held: false } } }, cipher: t.repo.cipher.type,
          db: [], archive: [], backup: [], repo: [{ key: t.repo.key, cipher: t.repo.cipher.type, status: { code: 1, message: 'missing stanza path' } }],
        });
      }
    }
    const merged = stanzaMerge(parts);
    const spool = ctx.agents.list().find((c) => c.stanzas.includes(s) && c.archiveSpool)?.archiveSpool;
    if (spool) merged['archive-async'] = { ready: spool.ready, 'ready-bytes': spool.readyBytes, oldest: spool.oldest || null, failing: spool.failing, 'reported-at': Math.floor(spool.at / 1000) };
    result.push(merged);
  }
  const set = ctx.config.strOpt('set');
  const text = result.length === 0 ? 'No stanzas exist in the repository.\n'
    : result.map((s) => (s.status.code === 1 ? `stanza: ${s.name}\n    status: error (missing stanza path)\n` : stanzaText(s, set))).join('\n');
  return { text, json: result };
}

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Config, FilterPool, MemoryGovernor, OptionInvalidError, WAL_WARM_MS, log, pgControlRead } from '@openrds/common';
import type { CompressType, PgControl } from '@openrds/common';
import { archiveGetFile } from '../command/archive/get';
import { archiveKeyGet, archivePushFile } from '../command/archive/push';
import { archivePushStreamClose } from '../command/archive/push-stream';
import { repoClientNew } from '../repo-client';
import { AsyncGetter } from './async-get';
import { AsyncPusher, queueFullDrop } from './async-push';
import { localServerStart } from './local-server';
import type { JobContext } from './jobs';
import { AgentSession, agentHelloNew } from './session';
import { WalFlushProbe, pgConnect } from './pg-connect';
import { WalStreamer } from './wal-stream';

function ownerName(uid: number): string {
  const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.split(':')[2] === String(uid));
  return line?.split(':')[0] ?? String(uid);
}

/** pg_control as carried on the wire. */
export function pgControlToInfo(c: PgControl) {
  return {
    systemId: c.systemId, pgVersion: c.pgVersion, controlVersion: c.controlVersion, catalogVersion: c.catalogVersion,
    walSegmentSize: c.walSegmentSize, pageSize: c.pageSize, checksumVersion: c.checksumVersion,
    checkpointLsn: c.checkpointLsn, timeline: c.timeline, state: c.state,
  };
}

/**
 * `openrds-agent serve`: the daemon on a PostgreSQL host. Registers its stanza with the
 * repo-server, runs the jobs it sends, and answers the local archive-push/archive-get calls.
 */
export async function agentServe(config: Config): Promise<void> {
  const stanza = config.str('stanza');
  const pgPath = path.resolve(config.str('pg1-path'));
  const ownerStat = fs.statSync(pgPath);
  const owner = ownerStat.uid;
  const asRoot = process.getuid?.() === 0 && owner !== 0 && config.bool('restore-as-root');
  if (asRoot) {
    log.warn(`agent running as root for restores only (restore-as-root): restored files are chowned to ${ownerName(owner)} (uid ${owner}, gid ${ownerStat.gid}); backups and SQL jobs are refused`);
  } else if (process.getuid && process.getuid() !== owner) {
    // Files restored by another user (root, say) would leave a cluster PostgreSQL cannot start.
    throw new OptionInvalidError(`openrds-agent must run as the owner of '${pgPath}' (uid ${owner}), not uid ${process.getuid()}`,
      { hint: `run it as the PostgreSQL OS user, e.g. 'runuser -u ${ownerName(owner)} -- openrds-agent serve ...' (as root for a restore only: --restore-as-root)` });
  }
  const control = await pgControlRead(pgPath);
  const client = repoClientNew(config);
  const agentId = `${os.hostname()}:${pgPath}`;
  // File and WAL work (read, hash, zstd, write) runs on worker threads, one per core at most,
  // shared by jobs (each bounded by its process-max) and WAL pushes.
  const pool = new FilterPool();
  new MemoryGovernor().start();
  const ctx: JobContext = { config, stanza, pgPath, pgVersion: control.pgVersion, client, pool, ...(asRoot ? { restoreOwner: { uid: owner, gid: ownerStat.gid } } : {}) };
  const session = new AgentSession(ctx, agentHelloNew({
    agentId, hostname: os.hostname(), stanza, pgPath, control: pgControlToInfo(control), osUser: os.userInfo().username,
  }));
  const timeoutMs = config.num('archive-timeout') * 1000;
  const compressType = config.str('compress-type') as CompressType;
  const streaming = config.bool('archive-async') && config.bool('archive-push-stream') && compressType === 'zst';
  // The stream stages only WAL PostgreSQL has flushed, when it can ask (a primary it can connect to).
  const flushProbe = streaming ? new WalFlushProbe((lost) => pgConnect(config, 'openrds-wal-stream', lost)) : undefined;
  const streamer = streaming
    ? new WalStreamer({
      client, pool, pgPath, stanza, agentId, walSegmentSize: control.walSegmentSize, pageSize: control.walPageSize,
      compressLevel: config.int('compress-level'), timeoutMs,
      plain: async () => (await archiveKeyGet(client, stanza, timeoutMs)) === undefined,
      ...(flushProbe ? { flushed: () => flushProbe.position() } : {}),
    })
    : undefined;
  // After each WAL push or fetch the pool keeps a worker up: the next one comes in seconds or
  // minutes, and someone waits on it (archive_command, a recovery).
  const warm = <T>(r: T): T => { pool.keepWarm(WAL_WARM_MS); return r; };
  // WAL pushes compress process-max segments at a time (more are on their way: see PUSHES_PER_PROCESS).
  const pushPool = pool.limited(config.int('process-max'));
  const pushOne = (walPath: string) => archivePushFile(client, {
    stanza, walPath, compressType, compressLevel: config.int('compress-level'), agentId, timeoutMs, pool: pushPool,
    ...(streamer ? { staged: () => streamer.take(path.basename(walPath)) } : {}),
  }).then(warm);
  const getOne = (walName: string, destination: string) =>
    archiveGetFile(client, { stanza, walName, destination, timeoutMs, pool, walSegmentSize: control.walSegmentSize }).then(warm);
  const pushFile = (walPath: string) => (streamer ? streamer.hold(() => pushOne(walPath)) : pushOne(walPath));
  const queueLimit = {
    pgPath, walSegmentSize: control.walSegmentSize,
    ...(config.strOpt('archive-push-queue-max') ? { queueMax: config.int('archive-push-queue-max') } : {}),
  };
  const pusher = config.bool('archive-async')
    ? new AsyncPusher({ ...queueLimit, spoolPath: config.str('spool-path'), stanza, processMax: config.int('process-max'), push: pushFile })
    : undefined;
  const getter = config.bool('archive-async')
    ? new AsyncGetter({
      spoolPath: config.str('spool-path'), stanza, walSegmentSize: control.walSegmentSize, processMax: config.int('process-max'),
      queueMax: config.int('archive-get-queue-max'),
      get: getOne,
    })
    : undefined;
  // A restore this agent writes with restore_command pointing here starts the prefetch at once.
  if (getter) ctx.walPrefetch = (walName, opts) => { getter.prime(walName, opts).catch((err: Error) => log.warn(`prefetch from '${walName}' failed: ${err.message}`)); };
  const local = await localServerStart(config.str('agent-socket-path'), async (req) => {
    if (req.cmd !== 'ping' && req.stanza !== stanza) {
      throw new OptionInvalidError(`this agent serves stanza '${stanza}', not '${req.stanza}'`,
        { hint: 'check --stanza in archive_command / restore_command and agent-socket-path' });
    }
    if (req.cmd === 'archive-push') {
      // In async mode a push of the same file may be under way: join it (and record it in the spool).
      let res;
      try {
        // PostgreSQL is asking: the files ready after this one go out now, not at the next scan.
        if (pusher) void pusher.scan();
        res = pusher ? await pusher.push(path.basename(req.path)) : await pushFile(req.path);
      } catch (err) {
        const warning = await queueFullDrop(queueLimit, path.basename(req.path), (err as Error).message);
        if (!warning) throw err;
        res = { warning };
      }
      return res.warning ? { warning: res.warning } : {};
    }
    if (req.cmd === 'archive-get') {
      const found = getter ? await getter.get(req.walName, req.destination) : await getOne(req.walName, req.destination);
      return { found };
    }
    return {};
  });
  await pusher?.start();
  streamer?.start();
  if (pusher) session.heartbeatStatus = () => ({ archiveSpool: pusher.status });
  getter?.start();
  log.info(`agent for stanza '${stanza}' (PostgreSQL ${control.pgVersion}, system-id ${control.systemId}, '${pgPath}') started`);
  const shutdown = (sig: string): void => {
    log.info(`${sig} received: agent stopping`);
    pusher?.stop();
    streamer?.stop();
    flushProbe?.close();
    getter?.stop();
    session.stop();
    local.close();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  await session.run();
  archivePushStreamClose(client);
  client.close();
}

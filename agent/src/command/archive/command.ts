import * as fs from 'node:fs';
import * as os from 'node:os';
// Loaded on every archive_command / restore_command call: only light modules at the top; gRPC,
// zstd and the rest load only when no local daemon answers.
import type { Config } from '@openrds/common/dist/config';
import type { CompressType } from '@openrds/common/dist/io/compress';
import { FormatError, OpenrdsError, OptionRequiredError, errorClasses } from '@openrds/common/dist/error';
import { log } from '@openrds/common/dist/log';
import { localRequest, type LocalResponse } from '../../daemon/local-client';

/** Rebuilds the error the local daemon reported. */
function localError(res: Extract<LocalResponse, { ok: false }>): OpenrdsError {
  const Cls = errorClasses.get(res.error.name) ?? OpenrdsError;
  return new Cls(res.error.message, res.error.hint ? { hint: res.error.hint } : {});
}

/**
 * `archive-push %p`: asks the local daemon to push the file; when no daemon runs, pushes it
 * directly to the repo-server. Exit 0 only once the repo-server has the file durably.
 */
export async function archivePushCommand(config: Config, walPath: string): Promise<number> {
  if (!config.args[0]) throw new OptionRequiredError('archive-push requires the WAL path (%p)', { hint: "archive_command = 'openrds-agent archive-push %p --stanza=...'" });
  const stanza = config.str('stanza');
  const timeoutMs = config.num('archive-timeout') * 1000;
  const name = walPath.split('/').pop()!;
  // Async mode: the daemon may have pushed the file already; its acknowledgement is in the spool.
  if (config.bool('archive-async') && fs.existsSync(`${config.str('spool-path')}/archive/${stanza}/out/${name}.ok`)) {
    log.info(`pushed WAL file '${name}' to the archive (asynchronously)`);
    return 0;
  }
  // The daemon pushes with its own compression settings: a call that sets them pushes itself.
  const ownCompression = ['compress-type', 'compress-level'].some((o) => config.source(o) === 'command-line');
  const res = ownCompression ? undefined
    : await localRequest(config.str('agent-socket-path'), { cmd: 'archive-push', stanza, path: walPath }, timeoutMs + 5000);
  if (res) {
    if (!res.ok) throw localError(res);
    if (res.warning) log.warn(res.warning);
    log.info(`pushed WAL file '${walPath.split('/').pop()}' to the archive`);
    return 0;
  }
  log.detail(ownCompression ? 'compression set on the command line: pushing directly to the repo-server' : 'no local agent daemon: pushing directly to the repo-server');
  const { repoClientNew, repoTunnelClose } = await import('../../repo-client.js');
  const { archivePushFile } = await import('./push.js');
  const client = repoClientNew(config);
  try {
    const result = await archivePushFile(client, {
      stanza, walPath, compressType: config.str('compress-type') as CompressType,
      compressLevel: config.int('compress-level'), agentId: `${os.hostname()}:archive-push`, timeoutMs,
    });
    if (result.warning) log.warn(result.warning);
    log.info(`pushed WAL file '${walPath.split('/').pop()}' to the archive`);
  } finally {
    client.close();
    repoTunnelClose();
  }
  return 0;
}

/**
 * `archive-get %f "%p"`: 0 when the file was written to %p, 1 when the archive does not have it.
 * Errors throw (and exit above 125) so that PostgreSQL never takes one for the end of the archive.
 */
export async function archiveGetCommand(config: Config, walName: string, destination: string): Promise<number> {
  if (!walName || !config.args[1]) {
    throw new OptionRequiredError('archive-get requires the WAL file name (%f) and the destination (%p)',
      { hint: `restore_command = 'openrds-agent archive-get %f "%p" --stanza=...'` });
  }
  if (walName.includes('/')) throw new FormatError(`'${walName}' is not a WAL file name`);
  const stanza = config.str('stanza');
  const timeoutMs = config.num('archive-timeout') * 1000;
  const res = await localRequest(config.str('agent-socket-path'), { cmd: 'archive-get', stanza, walName, destination }, timeoutMs + 5000);
  let found: boolean;
  if (res) {
    if (!res.ok) throw localError(res);
    found = res.found === true;
  } else {
    const { repoClientNew, repoTunnelClose } = await import('../../repo-client.js');
    const { archiveGetFile } = await import('./get.js');
    const client = repoClientNew(config);
    try {
      found = await archiveGetFile(client, { stanza, walName, destination, timeoutMs });
    } finally {
      client.close();
    repoTunnelClose();
    }
  }
  if (found) log.info(`found ${walName} in the archive`);
  else log.info(`unable to find ${walName} in the archive`);
  return found ? 0 : 1;
}

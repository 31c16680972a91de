import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Config } from '@openrds/common';

/**
 * The command line that runs this agent, for restore_command: the `cmd` option, else the
 * installed wrapper beside this install (<prefix>/bin/openrds-agent), else node + this script.
 */
export function agentCommandLine(config: Config): string {
  let cmd = config.strOpt('cmd');
  if (!cmd) {
    const wrapper = path.resolve(__dirname, '..', '..', '..', 'bin', 'openrds-agent');
    cmd = fs.existsSync(wrapper) ? wrapper : `${process.execPath} ${path.resolve(__dirname, '..', 'cli.js')}`;
  }
  return cmd;
}

/**
 * The restore_command that fetches WAL through this agent. With archive-async=y a file the
 * daemon prefetched into the spool is taken with a shell test and a rename, without starting
 * Node (the spool holds only complete, checked files: the daemon renames them in when durable),
 * and "not in the archive" is answered by the shell while the daemon's `<file>.missing` holds a
 * second still to come (see AsyncGetter).
 */
export function agentRestoreCommand(config: Config, stanza: string): string {
  const configPath = config.source('config') !== 'default' ? config.strOpt('config') : undefined;
  const configArg = configPath ? ` --config=${configPath}` : '';
  const get = `${agentCommandLine(config)} archive-get %f "%p" --stanza=${stanza}${configArg}`;
  if (config.get('archive-async') !== true) return get;
  const inDir = path.join(config.str('spool-path'), 'archive', stanza, 'in');
  const fresh = `[ "$(cat ${inDir}/%f.missing 2>/dev/null || echo 0)" -gt "$(date +%s)" ]`;
  return `test -f ${inDir}/%f && mv ${inDir}/%f "%p" || { ${fresh} && exit 1; } || ${get}`;
}

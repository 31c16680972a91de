import { keyList, keyRotate } from '../command/key';
import { AsyncLocalStorage } from 'node:async_hooks';
import type * as grpc from '@grpc/grpc-js';
import {
  CommandInvalidError, OPENRDS_VERSION, OptionInvalidError, optionEnvName, StopError, configLoad, errorToGrpc, errorWrap, log, logSubscribe, memorySettle,
} from '@openrds/common';
import type { AdminHandlers, CommandEvent, CommandName, CommandRequest__Output } from '@openrds/common';
import { backup } from '../command/backup/backup';
import { check } from '../command/check';
import { expire } from '../command/expire';
import { verify } from '../command/verify';
import { FENCED_COMMANDS, start, stop, stopCheck } from '../command/stop';
import type { CommandContext, CommandOutput } from '../command/context';
import { info } from '../command/info';
import { restore } from '../command/restore/restore';
import { stanzaCreate } from '../command/stanza-create';
import { repoSelect, type RepoHandle } from '../repo/repo-set';
import type { AgentRegistry } from './agent-registry';
import type { OperationRegistry } from './operations';
import type { TransferRegistry } from './transfers';

type Handler = (ctx: CommandContext) => Promise<CommandOutput>;

/** `agents`: who is connected, for which stanza, since when. */
async function agentsList(ctx: CommandContext): Promise<CommandOutput> {
  const rows = ctx.agents.list().map((a) => ({
    agentId: a.hello.agentId, hostname: a.hello.hostname, version: a.hello.version, stanzas: a.stanzas, peer: a.peer,
    osUser: a.hello.osUser, connectedAt: new Date(a.connectedAt).toISOString(), lastContact: new Date(a.lastContact).toISOString(),
  }));
  const text = rows.length === 0 ? 'no agents connected\n'
    : rows.map((r) => `agent ${r.agentId} (${r.version}) stanza ${r.stanzas.join(',')} host ${r.hostname} user ${r.osUser} from ${r.peer}, connected ${r.connectedAt}, last contact ${r.lastContact}`).join('\n') + '\n';
  return { text, json: rows };
}

const handlers: Partial<Record<CommandName, Handler>> = {
  'stanza-create': stanzaCreate, check, backup, info, restore, expire, verify, stop, start, agents: agentsList,
  'key-list': keyList, 'key-rotate': keyRotate,
};

/** The command each admin request runs in, so that its log lines reach its own client only. */
const commandScope = new AsyncLocalStorage<symbol>();

/**
 * The Admin service: runs a command of openrds-admin on the repo-server, with the options the
 * admin sent over the server's own configuration, and streams the command's log lines back.
 */
export function adminHandlers(deps: { repos: readonly RepoHandle[]; agents: AgentRegistry; transfers: TransferRegistry;
  operations: OperationRegistry; configPath: string | undefined }): AdminHandlers {
  return {
    Run(call: grpc.ServerWritableStream<CommandRequest__Output, CommandEvent>) {
      const req = call.request;
      const scope = Symbol(req.command);
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort(new Error('the admin client went away')));
      const unsubscribe = logSubscribe((rec) => {
        if (commandScope.getStore() === scope) call.write({ log: { level: rec.level, message: rec.message, timeMs: rec.time } });
      });
      void commandScope.run(scope, async () => {
        const handler = handlers[req.command as CommandName];
        if (!handler) throw new CommandInvalidError(`command '${req.command}' is not run by the repo-server`, { hint: 'run openrds-admin help' });
        // Which configuration the repo-server reads is its own business, not a client's.
        for (const name of ['config', 'config-include-path']) {
          if (name in req.options || req.listOptions.some((kv) => kv.startsWith(`${name}=`))) {
            throw new OptionInvalidError(`option '${name}' of the repo-server cannot be set by a client`, { hint: 'set it where the repo-server starts' });
          }
        }
        // key rotate's new passphrase arrives as the one secret option: given through the environment of this load, never argv.
        const env: NodeJS.ProcessEnv = {};
        for (const [k, v] of Object.entries(process.env)) if (!/^OPENRDS_REPO\d+_CIPHER_PASS_NEW$/.test(k)) env[k] = v;
        const isPassNew = (k: string): boolean => /^repo\d+-cipher-pass-new$/.test(k);
        for (const [k, v] of Object.entries(req.options)) {
          if (isPassNew(k) && req.command === 'key-rotate') env[optionEnvName(k)] = v;
        }
        const argv = Object.entries(req.options).filter(([k]) => !isPassNew(k)).map(([k, v]) => `--${k}=${v}`);
        argv.push(...req.listOptions.map((kv) => `--${kv}`));
        if (req.stanza) argv.push(`--stanza=${req.stanza}`);
        if (deps.configPath) argv.push(`--config=${deps.configPath}`);
        const config = configLoad({ command: req.command as CommandName, argv, env });
        log.info(`${req.command} command begin ${OPENRDS_VERSION}: ${argv.filter((a) => !a.startsWith('--config=')).join(' ')}`);
        const started = Date.now();
        if (FENCED_COMMANDS.has(req.command)) stopCheck(config, config.str('stanza'));
        const done = deps.operations.add({ command: req.command, stanza: config.stanza, startedAt: started, abort });
        try {
          const out = await handler({
            config, ...repoSelect(deps.repos, config), repos: deps.repos, agents: deps.agents, transfers: deps.transfers,
            operations: deps.operations, signal: abort.signal,
          });
          log.info(`${req.command} command end: completed successfully (${Date.now() - started}ms)`);
          return out;
        } finally {
          done();
          memorySettle();
        }
      }).then((out) => {
        unsubscribe();
        call.write({ result: { text: out.text, json: JSON.stringify(out.json ?? null), exitCode: out.exitCode ?? 0 } });
        call.end();
      }, (err) => {
        // A command ended by `stop --force` (or a vanished client) says so, whatever it was doing.
        const e = abort.signal.aborted && !(err instanceof StopError)
          ? new StopError(`${req.command} ended: ${(abort.signal.reason as Error | undefined)?.message ?? 'aborted'}`, { cause: err })
          : errorWrap(err);
        commandScope.run(scope, () => log.error(`${req.command} command end: aborted with exception [${e.code}]`));
        unsubscribe();
        call.emit('error', errorToGrpc(e));
      });
    },

    Ping(_call, callback) {
      callback(null, { version: OPENRDS_VERSION, timeMs: Date.now() });
    },
  };
}

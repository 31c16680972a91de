import { spawn, type SpawnOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export interface CommandResult { code: number; stdout: string; stderr: string }

/** Runs a command to completion; never throws on a non-zero exit (the caller asserts). */
export function runCommand(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; uid?: number; gid?: number; cwd?: string;
  timeoutMs?: number; input?: string } = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const spawnOpts: SpawnOptions = { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'], ...(opts.cwd ? { cwd: opts.cwd } : {}) };
    if (opts.uid !== undefined) spawnOpts.uid = opts.uid;
    if (opts.gid !== undefined) spawnOpts.gid = opts.gid;
    const child = spawn(cmd, args, spawnOpts);
    let stdout = '', stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timeoutMs = opts.timeoutMs ?? 120_000;
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
    child.on('error', (err) => { clearTimeout(timer); reject(new Error(`cannot run '${cmd}': ${err.message}`)); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) stderr += `\n(killed: still running after ${timeoutMs} ms)`;
      resolve({ code: code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1), stdout, stderr });
    });
    // A command that does not read its input must not fail the run with EPIPE.
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(opts.input ?? '');
  });
}

/** Runs a command and throws with its output when it fails. */
export async function runOk(cmd: string, args: string[], opts: Parameters<typeof runCommand>[2] = {}): Promise<string> {
  const r = await runCommand(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

export interface Service {
  pid: number;
  stop(signal?: NodeJS.Signals): Promise<void>;
  logText(): string;
}

/** Starts a long-running program with its output in a log file, and waits until it is ready. */
export async function spawnService(opts: { cmd: string; args: string[]; env?: NodeJS.ProcessEnv; uid?: number; gid?: number;
  logFile: string; readyWhen: () => Promise<boolean>; timeoutMs: number }): Promise<Service> {
  const fd = fs.openSync(opts.logFile, 'a');
  const spawnOpts: SpawnOptions = { env: opts.env ?? process.env, stdio: ['ignore', fd, fd], detached: false };
  if (opts.uid !== undefined) spawnOpts.uid = opts.uid;
  if (opts.gid !== undefined) spawnOpts.gid = opts.gid;
  const child = spawn(opts.cmd, opts.args, spawnOpts);
  fs.closeSync(fd);
  let exited = false;
  let spawnError: Error | undefined;
  const exit = new Promise<void>((resolve) => {
    child.on('exit', () => { exited = true; resolve(); });
    // Not startable (missing, not executable): 'exit' never comes.
    child.on('error', (err) => { spawnError = err; exited = true; resolve(); });
  });
  const logText = (): string => (fs.existsSync(opts.logFile) ? fs.readFileSync(opts.logFile, 'utf8') : '');
  const until = Date.now() + opts.timeoutMs;
  for (;;) {
    if (spawnError) throw new Error(`cannot run '${opts.cmd}': ${spawnError.message}`);
    if (exited) throw new Error(`${opts.cmd} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${logText()}`);
    if (await opts.readyWhen().catch(() => false)) break;
    if (Date.now() > until) {
      child.kill('SIGKILL');
      await exit;
      throw new Error(`${opts.cmd} was not ready within ${opts.timeoutMs} ms:\n${logText()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    pid: child.pid!,
    logText,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (exited) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(timer);
    },
  };
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** uid, gid and home of an OS user, from /etc/passwd. */
export function osUser(name: string): { uid: number; gid: number; home: string } {
  const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`OS user '${name}' does not exist: run scripts/setup-test.sh`);
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]), home: f[5]! };
}

/** A new directory under /tmp that the postgres user can traverse; the caller removes it. */
export async function tmpDir(prefix: string): Promise<string> {
  const dir = await fs.promises.mkdtemp(path.join('/tmp', prefix));
  await fs.promises.chmod(dir, 0o755);
  return dir;
}

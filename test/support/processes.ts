// Child processes for tests and the sandbox: started in their own process group so that
// stopping one also stops everything it started, and stopped on exit so none is left behind.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createServer } from 'node:net';
import { openSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';

export interface ManagedProcess {
  name: string;
  child: ChildProcess;
  /** resolves with the exit code (or signal name) once the process ended */
  exited: Promise<number | string>;
  /** `signal` (default SIGTERM) to the process group, SIGKILL after graceMs (default 5 s) */
  stop(graceMs?: number, signal?: NodeJS.Signals): Promise<void>;
}

const running = new Set<ManagedProcess>();

/** Starts a long-running process; its output goes to logFile. */
export function startProcess(name: string, command: string, args: string[], logFile: string, options: SpawnOptions = {}): ManagedProcess {
  const log = openSync(logFile, 'a');
  const child = spawn(command, args, { ...options, detached: true, stdio: ['ignore', log, log] });
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
    child.once('error', (error) => resolve(`spawn error: ${error.message}`));
  });
  // output goes to a file, so the handle need not keep this process alive: a test file that
  // started a control plane ends when its tests end (the exit handlers stop the group)
  child.unref();
  const managed: ManagedProcess = { name, child, exited, stop: (graceMs = 5_000, signal: NodeJS.Signals = 'SIGTERM') => stopGroup(managed, graceMs, signal) };
  running.add(managed);
  void exited.then(() => running.delete(managed));
  return managed;
}

async function stopGroup(managed: ManagedProcess, graceMs: number, signal: NodeJS.Signals): Promise<void> {
  const pid = managed.child.pid;
  if (pid === undefined || managed.child.exitCode !== null || managed.child.signalCode !== null) {
    signalGroup(pid, 'SIGKILL'); // children of an exited leader may still run
    return;
  }
  signalGroup(pid, signal);
  const killed = await Promise.race([managed.exited.then(() => true), delay(graceMs).then(() => false)]);
  signalGroup(pid, 'SIGKILL');
  if (!killed) await managed.exited;
}

function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is already gone
  }
}

const exitCleanups = new Set<() => void>();

/**
 * A synchronous clean-up for an exit without the usual stop (a signal, a crash): for what the
 * process groups do not hold, e.g. a real node's container shims, which daemonize. Returns its removal.
 */
export function onExitSync(cleanup: () => void): () => void {
  exitCleanups.add(cleanup);
  return () => exitCleanups.delete(cleanup);
}

/** Stops every process started through this module (synchronously, for exit handlers). */
export function killAllSync(): void {
  for (const cleanup of exitCleanups) {
    try {
      cleanup();
    } catch {
      // the others still run
    }
  }
  for (const managed of running) signalGroup(managed.child.pid, 'SIGKILL');
}

let exitHandlersInstalled = false;
/** Makes sure no started process outlives this one, whichever way it ends. */
export function installExitHandlers(): void {
  if (exitHandlersInstalled) return;
  exitHandlersInstalled = true;
  process.once('exit', killAllSync);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killAllSync();
      process.exit(130);
    });
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A TCP port that was free a moment ago on the given loopback address. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Polls check() until it returns true; fails after timeoutMs with what the last check said. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, failed?: () => string | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    const failure = failed?.();
    if (failure) throw new Error(`${what}: ${failure}`);
    try {
      if (await check()) return;
    } catch (error) {
      lastError = (error as Error).message;
    }
    await delay(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${lastError})` : ''}`);
}

/** Runs a command to completion and returns its exit code and output; never throws for a non-zero exit. */
export function run(command: string, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve({ code: 127, stdout, stderr: stderr + error.message });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    // a command that exits without reading its input must not crash us with EPIPE
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

/** For waitFor's `failed`: once the process has exited, its exit code and the end of its log. */
export function exitedMessage(p: ManagedProcess, logFile: string): string | undefined {
  if (p.child.exitCode === null && p.child.signalCode === null) return undefined;
  let tail = '';
  try {
    tail = readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    // it exited before writing a log
  }
  return `${p.name} exited (${p.child.exitCode ?? p.child.signalCode}):\n${tail}`;
}

/** True when a plain-HTTP GET of url answers 200 within 2 s. */
export function httpOk(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false)).on('timeout', () => req.destroy());
    req.end();
  });
}

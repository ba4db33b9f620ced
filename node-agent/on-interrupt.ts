// What a process must not leave behind when it is interrupted (Ctrl-C, SIGTERM,
// a closed terminal): QEMU processes, child processes, network namespaces and
// temp dirs. Their owners register a synchronous undo while they hold one and
// drop it once they cleaned up the normal way. On a signal every undo runs,
// newest first (a VM dies before the namespace it runs in), and the process
// exits with 128 + the signal number, as a shell reports it.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { constants } from 'node:os';

const undos = new Set<() => void>();
let installed = false;

function runUndosAndExit(signal: NodeJS.Signals): void {
  const pending = [...undos].reverse();
  for (const undo of pending) {
    try {
      undo();
    } catch {
      /* keep undoing the rest */
    }
  }
  // Silent when nothing was left to undo (a test worker told to end, say).
  if (pending.length) process.stderr.write(`mcg: interrupted (${signal}); stopped what it had started and removed what it had made\n`);
  process.exit(128 + (constants.signals[signal] ?? 0));
}

/** Registers `undo` to run if the process is interrupted; returns the function that drops it. */
export function onInterrupt(undo: () => void): () => void {
  if (!installed) {
    installed = true;
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, () => runUndosAndExit(signal));
  }
  undos.add(undo);
  return () => undos.delete(undo);
}

/**
 * Kills `child` (by its PID) if the process is interrupted while it runs, and waits until it
 * no longer runs: a killed QEMU takes milliseconds to die, and this process exits right after.
 */
export function killOnInterrupt(child: ChildProcess): void {
  const drop = onInterrupt(() => {
    child.kill('SIGKILL');
    if (child.pid !== undefined) waitUntilStopped(child.pid, STOP_WAIT_MS);
  });
  child.once('exit', drop);
}

const STOP_WAIT_MS = 5000;

/** Blocks until `pid` is gone or a zombie (a signal handler has no event loop left to wait in). */
function waitUntilStopped(pid: number, timeoutMs: number): void {
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; Atomics.wait(nap, 0, 0, 2)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return; // gone (or no /proc: nothing to wait with)
    }
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return;
  }
}

/** A temp dir removed on interrupt; `remove()` removes it (or keeps it, when asked) and drops the undo. */
export function interruptSafeTempDir(prefix: string): { path: string; remove(keep?: boolean): void } {
  const path = mkdtempSync(prefix);
  const erase = () => rmSync(path, { recursive: true, force: true });
  const drop = onInterrupt(erase);
  return {
    path,
    remove(keep = false) {
      drop();
      if (!keep) erase();
    },
  };
}

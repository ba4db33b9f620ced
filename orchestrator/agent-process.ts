// Starts `mcg node start` as a child process (the demo, tests and benchmarks
// use a real agent process) and stops it by its PID.
import { spawn, type ChildProcess } from 'node:child_process';
import { killOnInterrupt } from '../node-agent/on-interrupt.js';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { REPO_ROOT } from '../native/addon.js';

export interface AgentProcess {
  child: ChildProcess;
  address: string;
  stderr: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export const MCG_BIN = join(REPO_ROOT, 'bin', 'mcg.js');

export async function startAgentProcess(args: string[], startTimeoutMs = 15_000): Promise<AgentProcess> {
  const child = spawn(process.execPath, [MCG_BIN, 'node', 'start', '--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  killOnInterrupt(child);
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const lines = createInterface({ input: child.stdout! });
  const exited = once(child, 'exit');
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`node agent did not start in ${startTimeoutMs} ms: ${err}`)), startTimeoutMs).unref());
  const first = (async () => {
    for await (const line of lines) return JSON.parse(line) as { listening: string };
    throw new Error(`node agent exited before listening: ${err}`);
  })();
  let address: string;
  try {
    address = (await Promise.race([first, timeout, exited.then(() => { throw new Error(`node agent exited: ${err}`); })])).listening;
  } catch (e) {
    if (child.exitCode === null) child.kill('SIGKILL');
    throw e;
  }
  return {
    child,
    address,
    stderr: () => err,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const [code] = await exited;
      return code as number | null;
    },
  };
}

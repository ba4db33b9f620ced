// Ctrl-C (SIGINT) on a run that has guests up leaves nothing behind: no QEMU
// or probe process, no network namespace, no temp dir. Boots real VMs (root).
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeAll, expect, it } from 'vitest';
import { REPO_ROOT } from '../native/addon.js';
import { buildGuest } from './selfmig.js';

beforeAll(() => {
  buildGuest(); // cached by input hash; the child process below finds it there
}, 30 * 60_000);

/** A process that is gone, or a zombie nobody reaps (it no longer runs). */
function stopped(pid: number): boolean {
  const stat = `/proc/${pid}/stat`;
  return !existsSync(stat) || readFileSync(stat, 'utf8').split(') ')[1]?.startsWith('Z') === true;
}

let scratch: string | undefined;
afterEach(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

it('SIGINT during a self-migration run stops its VMs and removes its namespace and temp dir', async () => {
  scratch = mkdtempSync(join(tmpdir(), 'mcg-interrupt-'));
  const selfmig = pathToFileURL(join(REPO_ROOT, 'dist/orchestrator/selfmig.js')).href;
  // Guests up, then a long warm-up: the signal lands while everything is running.
  const script = `import { buildGuest, runMigration } from ${JSON.stringify(selfmig)};
    await runMigration({ mode: 'precopy', guest: buildGuest(), warmupMs: 600_000, log: (l) => console.error(l) });`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, TMPDIR: scratch },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = once(child, 'exit');
  try {
    let err = '';
    await new Promise<void>((resolve, reject) => {
      child.stderr!.on('data', (d) => {
        err += d;
        if (/guests up/.test(err)) resolve();
      });
      child.once('exit', () => reject(new Error(`the run ended before its guests were up: ${err}`)));
    });
    const children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(child.pid)], { encoding: 'utf8' })
      .split('\n').map((s) => Number(s.trim())).filter((n) => n > 0);
    const namespaces = () => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith(`mcg-${child.pid}-`));
    expect(children.length).toBeGreaterThanOrEqual(3); // source, receiver, probe
    expect(namespaces()).toHaveLength(1);
    expect(readdirSync(scratch)).toHaveLength(1);

    child.kill('SIGINT');
    const [code] = await exited;
    expect(code).toBe(130);
    expect(err).not.toMatch(/\n\s+at /); // no stack trace
    for (const pid of children) expect(stopped(pid), `child ${pid} still runs`).toBe(true);
    expect(namespaces()).toEqual([]);
    expect(readdirSync(scratch)).toEqual([]);
  } finally {
    // A failed check must not strand the VMs either: the same signal first, then force.
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }
}, 180_000);

// Runs one migration of a real guest between two QEMU VMs on a private
// network and measures it from outside: the guest's own self-migration
// (pre-copy or stop-and-copy) or QEMU's managed live migration of the same
// guest. Used by the tests (correctness, fail-safe) and `npm run bench`.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { interruptSafeTempDir, killOnInterrupt } from '../node-agent/on-interrupt.js';
import { tmpdir } from 'node:os';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { REPO_ROOT } from '../native/addon.js';
import { Vm, chooseAccel } from '../node-agent/qemu.js';
import { MIG_RECEIVER_IP, MIG_SOURCE_IP, SVC_GUEST_IP, Testbed } from './testbed.js';

export const GUEST_MEMORY_MIB = 256;
/*
 * Every VM has a receive area besides its guest's memory: a guest is booted without it
 * (memmap=...$...), and a receiver boots into it and keeps out of the rest
 * (precopy_receive_area=, patch 0037), so that what the receiving kernel allocates for itself
 * sits in no frame the image uses, whose page would wait in a stash for the atomic restore
 * to copy. Above the kernel image, which sits at 16 MiB and ends below 31 MiB.
 */
export const RECEIVE_AREA_MIB = 32;
const RECEIVE_AREA_AT_MIB = 32;
export const RECEIVER_PORT = 7100;
const SVC_MAC = '52:54:00:00:99:02';
const MIG_MAC = ['52:54:00:00:98:01', '52:54:00:00:98:02'];
const BOOT_TIMEOUT_MS = 60_000;
/*
 * The serial console stays up across a snapshot (no_console_suspend): suspending it waits for
 * the UART to drain and shuts the port down, 1.4-6.3 ms of the source's stop in the runs
 * measured (docs/self-migration.md), and the helper keeps the console quiet meanwhile anyway.
 */
const GUEST_CONSOLE = 'console=ttyS0 no_console_suspend';

export interface GuestArtifacts {
  dir: string;
  kernel: string;
  initrd: string;
}

/** Runs a cached build script of the repo (progress on stderr) and returns the artifact directory it prints last. */
export function runBuildScript(script: string, what: string): string {
  const r = spawnSync('bash', [join(REPO_ROOT, script)], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${what} build failed (see the output above)`);
  return r.stdout.trim().split('\n').at(-1)!;
}

/** Builds (or finds cached) the guest: guest-linux/build.sh. */
export function buildGuest(): GuestArtifacts {
  const dir = runBuildScript('guest-linux/build.sh', 'guest');
  return { dir, kernel: join(dir, 'bzImage'), initrd: join(dir, 'initramfs.cpio.gz') };
}

export type Mode = 'precopy' | 'stopcopy' | 'qemu';

/**
 * Where to inject a failure. The source holds 2 s at the later two points (a test hook), so
 * that the failure lands there however slowly this host reacts to the source's console: a
 * final round takes ~10 ms, and a failure after the receiver's ACK is no longer a fail-safe
 * case.
 */
export type FailurePoint = 'early' | 'mid-precopy' | 'final-round';
const FAILURE_HOLD_MS = 2000;
const FAILURE_HOOKS: Record<FailurePoint, { append: string; trigger: RegExp }> = {
  early: { append: '', trigger: /MCG-EVENT migrate-start/ },
  'mid-precopy': { append: `mcg_test_hold_at=round1 mcg_test_hold_ms=${FAILURE_HOLD_MS}`, trigger: /MCG-EVENT test-hook holding after round1 / },
  'final-round': { append: `mcg_test_hold_at=image mcg_test_hold_ms=${FAILURE_HOLD_MS}`, trigger: /MCG-EVENT test-hook holding after image / },
};
export interface Failure {
  at: FailurePoint;
  how: 'kill-receiver' | 'break-link';
}

export interface RunOptions {
  mode: Mode;
  guest: GuestArtifacts;
  workloadMiB?: number;
  /** random 8-byte words the workload writes per second */
  workloadRate?: number;
  warmupMs?: number;
  failure?: Failure;
  /** seconds of silence after which guest sockets give up (fail-safe tests shorten it) */
  ioTimeoutSec?: number;
  /** extra kernel command line words for the source (test hooks) */
  sourceAppend?: string;
  /** a receiver of another RAM size, which must refuse the source (test hook) */
  receiverMemoryMiB?: number;
  /**
   * false: the probe keeps no TCP stream, so the guest sends nothing it is not asked for
   * and the network learns where the target is only if it announces itself (test hook)
   */
  probeTcp?: boolean;
  /** false: no receive area; the receiver lives among the image's frames (bench comparisons) */
  receiveArea?: boolean;
  log?: (line: string) => void;
}

export interface ProbeSummary {
  seconds: number;
  /** sinceMark: replies or numbers that arrived after mark() (the migration's outcome) */
  udp: { sent: number; replies: number; sinceMark: number; maxGapMs: number; first: number | null; last: number | null; duplicates: number; missing: number; inOrder: boolean };
  tcp: { numbers: number; sinceMark: number; maxGapMs: number; closed: boolean; first: number | null; last: number | null; duplicates: number; missing: number; inOrder: boolean };
}

export interface RunResult {
  mode: Mode;
  accel: string;
  migrated: boolean;
  sourceStats?: Record<string, unknown>;
  receiverStats?: Record<string, unknown>;
  qemuStats?: Record<string, unknown>;
  probe: ProbeSummary;
  verify: string;
  /** the running copy's answer to "verify" through its migration NIC, which it would migrate on again */
  verifyViaMigrationNic: string;
  sourceRunning: boolean;
  targetRunning: boolean;
  /**
   * pages in the final image, how many of them it carried, how many user pages the kernel
   * took as unchanged from their soft-dirty bits without hashing them, how many text pages
   * it took as unchanged because no text was patched, and (a delta only) of the carried pages'
   * 512-byte blocks, how many changed and were sent (the source kernel's counts)
   */
  image?: { pages: number; copied: number; notHashed: number; textNotHashed: number; blocksSent?: number; blocks?: number };
  /** the receiver ran the image (printed "restored") */
  imageRan: boolean;
  events: string[];
  /** host-observed ms since the migrate command, per guest event (self-migration only) */
  timeline: Record<string, number>;
  /** where the service bridge delivered the guest's frames as the target reported itself restored */
  servicePortAtRestore?: 'target' | 'source' | 'unknown';
  totalMs: number;
}

export class Probe {
  private waiting = new Map<number, (s: string) => void>();
  private nextId = 1;
  private summary?: (s: ProbeSummary) => void;
  readonly ready: Promise<void>;

  constructor(private readonly child: ChildProcess) {
    killOnInterrupt(child);
    let markReady: () => void;
    this.ready = new Promise((r) => (markReady = r));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line);
      if (msg.ready) markReady();
      else if (msg.summary) this.summary?.(msg.summary);
      else if (msg.id) this.waiting.get(msg.id)?.(msg.reply);
    });
  }

  /** tcp: false leaves out the TCP counter stream (its numbers are then never counted). */
  static start(tb: Testbed, { tcp = true } = {}): Probe {
    const args = ['--target', SVC_GUEST_IP, '--interval-ms', '5', ...(tcp ? [] : ['--no-tcp'])];
    const child = spawn(tb.wrapper[0], [...tb.wrapper.slice(1), process.execPath, join(REPO_ROOT, 'dist/orchestrator/probe.js'), ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
    return new Probe(child);
  }

  /** One UDP request/reply through the namespace; resolves '' on timeout. */
  udp(to: string, data: string, timeoutMs = 5000): Promise<string> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiting.delete(id);
        resolve('');
      }, timeoutMs);
      this.waiting.set(id, (s) => {
        clearTimeout(t);
        this.waiting.delete(id);
        resolve(s);
      });
      this.child.stdin!.write(JSON.stringify({ cmd: 'udp', id, to, data }) + '\n');
    });
  }

  /** From now on the summary counts what arrives separately (sinceMark). */
  mark(): void {
    this.child.stdin!.write(JSON.stringify({ cmd: 'mark' }) + '\n');
  }

  stop(): Promise<ProbeSummary> {
    return new Promise((resolve) => {
      this.summary = resolve;
      this.child.stdin!.write(JSON.stringify({ cmd: 'stop' }) + '\n');
    });
  }

  kill(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

/**
 * The source's MCG-STATS object, or the receiver's, which the source prints too (it comes in the
 * receiver's ACK); undefined if there is none or kernel output garbled the line.
 */
export function parseStats(console: string[], whose: 'source' | 'receiver' = 'source'): Record<string, unknown> | undefined {
  for (const line of console.filter((l) => l.startsWith('MCG-STATS '))) {
    try {
      const stats = JSON.parse(line.slice('MCG-STATS '.length));
      if ((stats.receiver === true) === (whose === 'receiver')) return stats;
    } catch {
      /* garbled: look on */
    }
  }
  return undefined;
}

/** Both consoles merged in arrival order, each line stamped with host ms since `t0` (MCG_KEEP_LOGS). */
function writeTimeline(path: string, t0: number, vms: Vm[]): void {
  const rows = vms.flatMap((vm) => vm.console.map((line, i) => ({ at: vm.lineTimes[i] - t0, line: `${vm.spec.name}: ${line}` })));
  rows.sort((a, b) => a.at - b.at);
  writeFileSync(path, rows.map((r) => `${r.at.toFixed(1).padStart(9)} ${r.line}`).join('\n') + '\n');
}

/** Verifies the workload's whole buffer (retries: the guest may still be settling). */
export async function verifyWorkload(probe: Probe): Promise<string> {
  for (let i = 0; i < 5; i++) {
    const r = await probe.udp(`${SVC_GUEST_IP}:7002`, 'verify', 15_000);
    if (r) return r;
  }
  return '';
}

export async function runMigration(opts: RunOptions): Promise<RunResult> {
  const log = opts.log ?? (() => {});
  const accel = chooseAccel();
  const workDir = interruptSafeTempDir(join(tmpdir(), 'mcg-mig-'));
  const work = workDir.path;
  const tb = Testbed.create();
  const vms: Vm[] = [];
  let probe: Probe | undefined;
  const t0 = performance.now();
  try {
    const taps = { srcSvc: tb.addTap('svc'), srcMig: tb.addTap('mig'), dstSvc: tb.addTap('svc'), dstMig: tb.addTap('mig') };
    const io = opts.ioTimeoutSec ?? 10;
    const workload = `mcg_wl_mib=${opts.workloadMiB ?? 64} mcg_wl_rate=${opts.workloadRate ?? 2000}`;
    const qemuMode = opts.mode === 'qemu';
    // Under TCG our guests run their stop once at boot, so that a migration's stop is not
    // also translating its code (guest-linux/init). QEMU's own migration runs no guest code
    // while stopped.
    const rehearse = accel === 'tcg' && !qemuMode ? 'mcg_rehearse=1' : '';
    const area = opts.receiveArea ?? true;
    const areaMiB = area ? RECEIVE_AREA_MIB : 0;
    const keepOut = area ? `memmap=${RECEIVE_AREA_MIB}M$${RECEIVE_AREA_AT_MIB}M` : '';
    const keepTo = area ? `precopy_receive_area=${RECEIVE_AREA_MIB}M@${RECEIVE_AREA_AT_MIB}M` : '';
    // QEMU's migration needs identical machines; ours only the same kernel and RAM.
    const sourceAppend = `${GUEST_CONSOLE} ${keepOut} ${process.env.MCG_EXTRA_APPEND ?? ""} mcg_role=workload mcg_svc_ip=${SVC_GUEST_IP}/24 mcg_mig_ip=${MIG_SOURCE_IP}/24 mcg_io_timeout=${io} ${workload} ${rehearse} ${opts.sourceAppend ?? ''} ${opts.failure ? FAILURE_HOOKS[opts.failure.at].append : ''}`;
    // Preallocated for every method alike: each VM's memory is backed before it runs, as on Xen.
    const common = { kernel: opts.guest.kernel, initrd: opts.guest.initrd, memoryMiB: GUEST_MEMORY_MIB + areaMiB, wrapper: tb.wrapper, preallocate: true };
    const source = Vm.start({
      ...common, name: 'source', append: sourceAppend, consoleLog: join(work, 'source.log'), qmpSocket: join(work, 'source.qmp'),
      nics: [{ tap: taps.srcSvc, mac: SVC_MAC }, { tap: taps.srcMig, mac: MIG_MAC[0] }],
    }, accel);
    vms.push(source);
    const receiver = Vm.start({
      ...common, memoryMiB: (opts.receiverMemoryMiB ?? GUEST_MEMORY_MIB) + areaMiB, name: 'receiver', consoleLog: join(work, 'receiver.log'), qmpSocket: join(work, 'receiver.qmp'),
      append: qemuMode ? sourceAppend : `${GUEST_CONSOLE} ${keepTo} ${process.env.MCG_EXTRA_APPEND ?? ""} mcg_role=receive mcg_mig_ip=${MIG_RECEIVER_IP}/24 mcg_port=${RECEIVER_PORT} mcg_io_timeout=${io} ${rehearse}`,
      nics: [{ tap: taps.dstSvc, mac: SVC_MAC }, { tap: taps.dstMig, mac: qemuMode ? MIG_MAC[0] : MIG_MAC[1] }],
      extraArgs: qemuMode ? ['-incoming', 'tcp:127.0.0.1:4444'] : [],
    }, accel);
    vms.push(receiver);
    await source.waitFor(/MCG-EVENT workload-ready/, BOOT_TIMEOUT_MS);
    await source.waitFor(/MCG-EVENT services-ready/, BOOT_TIMEOUT_MS);
    if (!qemuMode) await receiver.waitFor(/MCG-EVENT receiver-ready/, BOOT_TIMEOUT_MS);
    log(`guests up (${accel}); source runs the workload, receiver waits`);
    probe = Probe.start(tb, { tcp: opts.probeTcp ?? true });
    await probe.ready;
    await sleep(opts.warmupMs ?? 1500);

    let qemuStats: Record<string, unknown> | undefined;
    let servicePort: RunResult['servicePortAtRestore'];
    const tMigrate = performance.now();
    if (qemuMode) {
      const r = await source.qmp('migrate', { uri: 'tcp:127.0.0.1:4444' });
      if (r.error) throw new Error(`QMP migrate: ${JSON.stringify(r.error)}`);
      for (;;) {
        const q = (await source.qmp('query-migrate')).return as Record<string, unknown>;
        if (q.status === 'completed') {
          qemuStats = q;
          break;
        }
        if (q.status === 'failed' || q.status === 'cancelled') throw new Error(`QEMU migration ${q.status}: ${JSON.stringify(q)}`);
        await sleep(50);
      }
      await source.stop(); // the paused source is ours to end
      probe.mark();
    } else {
      const reply = await probe.udp(`${SVC_GUEST_IP}:7009`, `migrate ${opts.mode} ${MIG_RECEIVER_IP}:${RECEIVER_PORT}`);
      if (reply !== 'started') throw new Error(`source did not start migrating (reply "${reply}")`);
      if (opts.failure) await injectFailure(opts.failure, source, receiver, tb, taps.dstMig, log);
      // Whichever happens first; the other wait fails (its VM exits or it times out).
      const outcome = await Promise.any([
        receiver.waitFor(/MCG-EVENT restored/, 240_000).then(() => 'restored' as const),
        source.waitFor(/MCG-EVENT migrate-failed/, 240_000).then(() => 'failed' as const),
      ]).catch((err: AggregateError) => {
        throw new Error(`migration neither finished nor failed cleanly: ${err.errors.map((e: Error) => e.message).join('; ')}`);
      });
      log(`migration ${outcome}`);
      probe.mark();
      if (outcome === 'restored') {
        const tap = tb.servicePortOf(SVC_MAC);
        servicePort = tap === taps.dstSvc ? 'target' : tap === taps.srcSvc ? 'source' : 'unknown';
        await Promise.race([source.exited, sleep(30_000)]);
      } else {
        await Promise.race([receiver.exited, sleep(opts.failure ? 60_000 : 5000)]);
      }
    }
    await sleep(1000);
    const verify = await verifyWorkload(probe);
    const verifyViaMigrationNic = await probe.udp(`${MIG_SOURCE_IP}:7002`, 'verify', 15_000);
    const summary = await probe.stop();
    const events = [...source.console, ...receiver.console].filter((l) => l.startsWith('MCG-EVENT'));
    const timeline: Record<string, number> = {};
    const mark = (name: string, vm: Vm, re: RegExp) => {
      const at = vm.timeOf(re);
      if (at !== undefined) timeline[name] = Math.round(at - tMigrate);
    };
    mark('source_last_round', source, /MCG-EVENT round \d+ /);
    mark('source_image_sending', source, /MCG-EVENT image-sending/);
    mark('source_reported', source, /MCG-EVENT migrated/); // after idling while the target restores
    mark('target_restored', receiver, /MCG-EVENT restored/);
    const imageLine = source.console
      .map((l) => /Delta image created \((\d+) of (\d+) pages copied, (\d+) user pages not hashed, (\d+) text pages not hashed, (\d+) of (\d+) blocks|Image created \((\d+) pages/.exec(l))
      .find(Boolean);
    const image = !imageLine
      ? undefined
      : imageLine[7]
        ? { pages: Number(imageLine[7]), copied: Number(imageLine[7]), notHashed: 0, textNotHashed: 0 }
        : {
            pages: Number(imageLine[2]), copied: Number(imageLine[1]), notHashed: Number(imageLine[3]), textNotHashed: Number(imageLine[4]),
            blocksSent: Number(imageLine[5]), blocks: Number(imageLine[6]),
          };
    return {
      mode: opts.mode,
      accel,
      image,
      migrated: qemuMode ? true : receiver.console.some((l) => /MCG-EVENT restored/.test(l)),
      sourceStats: parseStats(source.console),
      receiverStats: parseStats(source.console, 'receiver'),
      qemuStats,
      probe: summary,
      verify,
      verifyViaMigrationNic,
      sourceRunning: source.running,
      targetRunning: receiver.running,
      imageRan: qemuMode ? true : receiver.console.some((l) => /MCG-EVENT restored/.test(l)),
      events,
      timeline,
      servicePortAtRestore: servicePort,
      totalMs: performance.now() - tMigrate,
    };
  } finally {
    probe?.kill();
    for (const vm of vms) await vm.stop();
    tb.destroy();
    if (process.env.MCG_KEEP_LOGS) writeTimeline(join(work, 'timeline.txt'), t0, vms);
    workDir.remove(!!process.env.MCG_KEEP_LOGS);
    if (process.env.MCG_KEEP_LOGS) log(`consoles kept in ${work}`);
    log(`run took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
}

async function injectFailure(f: Failure, source: Vm, receiver: Vm, tb: Testbed, receiverMigTap: string, log: (l: string) => void): Promise<void> {
  await source.waitFor(FAILURE_HOOKS[f.at].trigger, 120_000);
  log(`injecting ${f.how} at ${f.at}`);
  if (f.how === 'kill-receiver') await receiver.stop();
  else tb.setLink(receiverMigTap, false);
}

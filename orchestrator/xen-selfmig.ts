// One migration of the mcg guest between two PVH domains of a real (emulated)
// Xen host: the guest's own self-migration to a receiver domain created by xl,
// or dom0's managed `xl migrate` of the same guest to localhost. Measured from
// outside by the same probe as on QEMU: the host's service network is bridged
// into dom0's xenbr0, where the guest's eth0 is.
import { writeFileSync } from 'node:fs';
import { interruptSafeTempDir } from '../node-agent/on-interrupt.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MIG_RECEIVER_IP, MIG_SOURCE_IP, SVC_GUEST_IP, Testbed } from './testbed.js';
import { Probe, RECEIVER_PORT, parseStats, sleep, verifyWorkload, type GuestArtifacts, type ProbeSummary } from './selfmig.js';
import { XenHost, type XenArtifacts } from './xen-testbed.js';

export const XEN_GUEST_MEMORY_MIB = 256;
const SVC_MAC = '00:16:3e:00:99:02';
const MIG_MAC = ['00:16:3e:00:98:01', '00:16:3e:00:98:02'];
const DOMU_BOOT_TIMEOUT_MS = 120_000;
const MIGRATION_TIMEOUT_MS = 900_000;

export type XenMode = 'precopy' | 'stopcopy' | 'xl';

export interface XenRunOptions {
  mode: XenMode;
  guest: GuestArtifacts;
  xen: XenArtifacts;
  workloadMiB?: number;
  workloadRate?: number;
  /** kill the receiver domain once the source starts migrating (fail-safe check) */
  killReceiver?: boolean;
  /** seconds of silence after which guest sockets give up */
  ioTimeoutSec?: number;
  log?: (line: string) => void;
}

export interface XenRunResult {
  mode: XenMode;
  migrated: boolean;
  probe: ProbeSummary;
  verify: string;
  /** domains left running afterwards (dom0 excluded) */
  domains: string[];
  sourceStats?: Record<string, unknown>;
  /** bytes that crossed the migration link or pipe */
  bytes: number;
  /** pre-copy rounds (ours) or 1 (xl's stream does not say) */
  rounds: number;
  totalMs: number;
  /** host-observed ms after the migrate command at which each guest event showed (self-migration) */
  timeline: Record<string, number>;
  consoles: Record<string, string[]>;
}

/**
 * Xen reported that a domain triple-faulted. Under QEMU's TCG emulation of nested SVM this
 * happens now and then to a healthy guest, its saved state sometimes Xen's own (docs/xen.md);
 * callers that only want the guest's behaviour may try once more.
 */
export class EmulatorCrash extends Error {}

const TRIPLE_FAULT = /\(XEN\) d\d+v\d+ Triple fault/;

/** The xl domain config of one mcg guest. */
function domainConfig(name: string, guestArgs: string, mig: string): string {
  return [
    `name = "${name}"`,
    'type = "pvh"',
    'kernel = "/guest/bzImage"',
    'ramdisk = "/guest/initramfs.cpio.gz"',
    `extra = "console=hvc0 ${guestArgs}"`,
    `memory = ${XEN_GUEST_MEMORY_MIB}`,
    'vcpus = 1',
    // PVH guests hang on emulated RDTSCP otherwise (FINDINGS).
    'tsc_mode = "native"',
    `vif = [ "mac=${SVC_MAC},bridge=xenbr0", "mac=${mig},bridge=xenbr1" ]`,
    'on_poweroff = "destroy"',
    // A triple fault is a reboot to Xen: a crashed guest must not come back as if it ran on.
    'on_reboot = "destroy"',
    'on_crash = "destroy"',
    '',
  ].join('\n');
}

// `xl migrate` runs "<ssh> <host> xl migrate-receive"; to localhost this stand-in
// drops the host and counts the bytes of the stream on the way through.
const LOCAL_SSH = '#!/bin/bash\nshift\ntee >(wc -c >/tmp/xl-stream-bytes) | "$@"\n';

/**
 * Creates a domain and waits until its guest is ready. Nested emulation now and then hangs a
 * PVH boot in the kernel's ACPI processor probing (once in ~40 boots here), before any mcg
 * code runs; such a boot is destroyed and tried once more.
 */
async function createDomain(host: XenHost, name: string, ready: RegExp, log: (l: string) => void): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    await host.must(`xl create /guest/${name}.cfg`, DOMU_BOOT_TIMEOUT_MS);
    try {
      await host.waitForDomain(name, ready, DOMU_BOOT_TIMEOUT_MS);
      return;
    } catch (err) {
      if (attempt === 2) throw err;
      log(`${name} did not boot within ${DOMU_BOOT_TIMEOUT_MS / 1000} s; destroying it and trying once more`);
      await host.sh(`xl destroy ${name}`);
    }
  }
}

export async function runXenMigration(opts: XenRunOptions): Promise<XenRunResult> {
  const log = opts.log ?? (() => {});
  const workDir = interruptSafeTempDir(join(tmpdir(), 'mcg-xen-'));
  const work = workDir.path;
  const tb = Testbed.create();
  let host: XenHost | undefined;
  let probe: Probe | undefined;
  try {
    const workload = `mcg_wl_mib=${opts.workloadMiB ?? 64} mcg_wl_rate=${opts.workloadRate ?? 2000}`;
    // Nested emulation is slow: the default silence limit is long.
    const io = opts.ioTimeoutSec ?? 30;
    const sourceArgs = `mcg_role=workload mcg_svc_ip=${SVC_GUEST_IP}/24 mcg_mig_ip=${MIG_SOURCE_IP}/24 mcg_io_timeout=${io} ${workload}`;
    const receiverArgs = `mcg_role=receive mcg_mig_ip=${MIG_RECEIVER_IP}/24 mcg_port=${RECEIVER_PORT} mcg_io_timeout=${io}`;
    writeFileSync(join(work, 'source.cfg'), domainConfig('source', sourceArgs, MIG_MAC[0]));
    writeFileSync(join(work, 'receiver.cfg'), domainConfig('receiver', receiverArgs, MIG_MAC[1]));
    writeFileSync(join(work, 'local-ssh'), LOCAL_SSH, { mode: 0o755 });
    host = await XenHost.boot({
      artifacts: opts.xen,
      files: {
        bzImage: opts.guest.kernel, 'initramfs.cpio.gz': opts.guest.initrd,
        'source.cfg': join(work, 'source.cfg'), 'receiver.cfg': join(work, 'receiver.cfg'), 'local-ssh': join(work, 'local-ssh'),
      },
      nic: { tap: tb.addTap('svc'), mac: '52:54:00:00:97:01' },
      wrapper: tb.wrapper,
      workDir: work,
    });
    log('xen host up; dom0 ready');
    await host.must('follow source; follow receiver');
    await createDomain(host, 'source', /MCG-EVENT services-ready/, log);
    if (opts.mode !== 'xl') await createDomain(host, 'receiver', /MCG-EVENT receiver-ready/, log);
    log('domains up: source runs the workload');
    probe = Probe.start(tb);
    await probe.ready;
    await sleep(3000);

    const tMigrate = performance.now();
    // until the target runs (ours: its "restored" line; xl: xl migrate returns)
    let totalMs = 0;
    let bytes = 0;
    let migrated = false;
    if (opts.mode === 'xl') {
      const xl = await host.sh('xl migrate -s /guest/local-ssh source localhost', MIGRATION_TIMEOUT_MS);
      if (xl.status !== 0) {
        const crashed = host.vm.console.some((l) => TRIPLE_FAULT.test(l));
        const message = `xl migrate failed (status ${xl.status})${crashed ? ': Xen reports the guest triple-faulted during the live phase' : ''}: ` +
          xl.output.filter((l) => /error|failed/i.test(l)).slice(-2).join(' / ');
        throw crashed ? new EmulatorCrash(message) : new Error(message);
      }
      totalMs = performance.now() - tMigrate;
      probe.mark();
      // wc writes its count when the stream ends, just after xl returns.
      const count = await host.must('for i in 1 2 3 4 5; do [ -s /tmp/xl-stream-bytes ] && break; sleep 1; done; cat /tmp/xl-stream-bytes');
      bytes = Number(count.join(' ').trim().split(/\s+/)[0] ?? 0);
      migrated = true;
    } else {
      const reply = await probe.udp(`${SVC_GUEST_IP}:7009`, `migrate ${opts.mode} ${MIG_RECEIVER_IP}:${RECEIVER_PORT}`, 15_000);
      if (reply !== 'started') throw new Error(`source did not start migrating (reply "${reply}")`);
      if (opts.killReceiver) {
        await host.waitForDomain('source', /MCG-EVENT migrate-start/, 60_000);
        await host.must('xl destroy receiver');
        log('receiver destroyed');
      }
      const outcome = await Promise.any([
        host.waitForDomain('receiver', /MCG-EVENT restored/, MIGRATION_TIMEOUT_MS).then(() => 'restored' as const),
        host.waitForDomain('source', /MCG-EVENT migrate-failed/, MIGRATION_TIMEOUT_MS).then(() => 'failed' as const),
        // After its ACK the source is gone: a receiver that dies now takes the system with it.
        host.waitForDomain('receiver', /Kernel panic|general protection fault|BUG: /, MIGRATION_TIMEOUT_MS).then(() => 'receiver-crashed' as const),
        // Without this the run would wait out the whole time limit (a rebooted domain says nothing).
        host.vm.waitFor(TRIPLE_FAULT, MIGRATION_TIMEOUT_MS).then(() => 'triple-fault' as const),
      ]).catch(() => {
        throw new Error('migration neither finished nor failed within the time limit');
      });
      if (outcome === 'triple-fault') {
        throw new EmulatorCrash('Xen reports a domain triple fault during the self-migration (QEMU\'s nested SVM emulation, docs/xen.md)');
      }
      log(`migration ${outcome}`);
      probe.mark();
      migrated = outcome === 'restored';
      totalMs = performance.now() - tMigrate;
      // The source powers itself off once acknowledged; on_poweroff destroys its domain.
      for (let i = 0; migrated && i < 60 && (await host.domains()).includes('source'); i++) await sleep(1000);
    }
    await sleep(2000);
    const verify = await verifyWorkload(probe);
    const summary = await probe.stop();
    probe = undefined;
    const domains = await host.domains();
    const sourceStats = parseStats(host.domainConsole('source'));
    if (opts.mode !== 'xl') bytes = Number((sourceStats as { total_bytes?: number } | undefined)?.total_bytes ?? 0);
    const rounds = opts.mode === 'xl' ? 1 : ((sourceStats as { rounds?: unknown[] } | undefined)?.rounds?.length ?? 0) + 1;
    const timeline: Record<string, number> = {};
    const events = { source_snapshot_taken: ['source', /MCG-EVENT image-sending/], source_reported: ['source', /MCG-EVENT migrated/],
      receiver_handing_over: ['receiver', /MCG-EVENT xen-nics handing over/], receiver_restoring: ['receiver', /MCG-EVENT acked: restoring/], target_restored: ['receiver', /MCG-EVENT restored/] } as const;
    for (const [name, [dom, re]] of Object.entries(events)) {
      const at = host.vm.timeOf(new RegExp(`^\\[${dom}\\] .*${re.source}`));
      if (at !== undefined && at > tMigrate) timeline[name] = Math.round(at - tMigrate);
    }
    return {
      mode: opts.mode, migrated, probe: summary, verify, domains, sourceStats, bytes, rounds, totalMs, timeline,
      consoles: { source: host.domainConsole('source'), receiver: host.domainConsole('receiver') },
    };
  } finally {
    probe?.kill();
    await host?.shutdown();
    tb.destroy();
    workDir.remove(!!process.env.MCG_KEEP_LOGS);
    if (process.env.MCG_KEEP_LOGS) log(`logs kept in ${work}`);
  }
}

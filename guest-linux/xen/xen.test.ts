// The mcg guest on a real Xen 4.17 host, emulated in QEMU (nested: slow). One
// self-migration between two PVH domains with the correctness checks of the
// QEMU suite, and the fail-safe: a receiver that dies leaves the source
// running. Downtimes are measured in `npm run bench -- xen`, never asserted.
import { beforeAll, describe, expect, it } from 'vitest';
import { buildGuest, type GuestArtifacts } from '../../orchestrator/selfmig.js';
import { buildXenTestbed, type XenArtifacts } from '../../orchestrator/xen-testbed.js';
import { EmulatorCrash, runXenMigration, type XenRunOptions, type XenRunResult } from '../../orchestrator/xen-selfmig.js';

let guest: GuestArtifacts;
let xen: XenArtifacts;
beforeAll(() => {
  guest = buildGuest();
  xen = buildXenTestbed();
}, 30 * 60_000);

const log = (l: string) => process.stderr.write(`[xen] ${l}\n`);

/**
 * QEMU's emulation of nested SVM now and then triple-faults a healthy domain (docs/xen.md);
 * Xen says so on its console and the run stops at once. Such a run says nothing about the
 * guest: it is logged and run once more. Any other failure fails the test.
 */
async function migrate(opts: Omit<XenRunOptions, 'guest' | 'xen' | 'log'>): Promise<XenRunResult> {
  try {
    return await runXenMigration({ ...opts, guest, xen, log });
  } catch (err) {
    if (!(err instanceof EmulatorCrash)) throw err;
    log(`emulator crash, running once more: ${err.message}`);
    return runXenMigration({ ...opts, guest, xen, log });
  }
}

describe.sequential('self-migration between two Xen PVH domains', () => {
  it('pre-copy: the receiver domain carries on with the whole state, the source domain is gone', async () => {
    const r = await migrate({ mode: 'precopy' });
    expect(r.migrated).toBe(true);
    expect(r.domains).toEqual(['receiver']);
    // The service answers at the same address, with the workload's whole buffer intact.
    expect(r.verify).toMatch(/^verify ok /);
    // The TCP counter runs on over the same connection, nothing lost or repeated.
    expect(r.probe.tcp).toMatchObject({ duplicates: 0, missing: 0, inOrder: true, closed: false });
    // UDP replies may be dropped in flight (the restored NIC reconnects) but never repeated.
    expect(r.probe.udp).toMatchObject({ duplicates: 0, inOrder: true });
    expect(r.probe.udp.replies).toBeGreaterThan(50);
    // The restored system runs on: its 10 ms TCP counter goes on after the restore (a system
    // whose clock stopped would still echo UDP, not count).
    expect(r.probe.tcp.sinceMark).toBeGreaterThanOrEqual(20);
    const s = r.sourceStats as { rounds: { pages: number }[]; in_use_pages: number };
    expect(s.rounds.length).toBeGreaterThanOrEqual(2);
    expect(s.rounds[0].pages).toBeLessThanOrEqual(s.in_use_pages);
    expect(r.consoles.receiver.some((l) => l.includes('MCG-EVENT restored mode=precopy'))).toBe(true);
  }, 900_000);

  it('fail-safe: the receiver domain destroyed mid-migration leaves the source running', async () => {
    const r = await migrate({ mode: 'precopy', killReceiver: true, ioTimeoutSec: 10 });
    expect(r.migrated).toBe(false);
    expect(r.domains).toEqual(['source']);
    expect(r.consoles.source.some((l) => /MCG-EVENT migrate-failed .*source=running/.test(l))).toBe(true);
    expect(r.consoles.receiver.some((l) => l.includes('MCG-EVENT restored'))).toBe(false);
    expect(r.verify).toMatch(/^verify ok /);
    expect(r.probe.tcp).toMatchObject({ duplicates: 0, missing: 0, inOrder: true, closed: false });
    expect(r.probe.tcp.sinceMark).toBeGreaterThanOrEqual(20);
  }, 900_000);
});

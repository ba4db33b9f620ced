// A private network for guests, made and removed by us: a network namespace
// holding two bridges (the service network the world uses and the migration
// link) and one tap per guest NIC. QEMU and the probe run inside it. Needs root.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { onInterrupt } from '../node-agent/on-interrupt.js';

export const SVC_HOST_IP = '10.99.0.1';
export const SVC_GUEST_IP = '10.99.0.2';
export const MIG_SOURCE_IP = '10.98.0.1';
export const MIG_RECEIVER_IP = '10.98.0.2';
/** the host on the migration network, to check a guest's migration NIC */
export const MIG_HOST_IP = '10.98.0.254';

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export class Testbed {
  private taps = 0;
  private readonly dropUndo = onInterrupt(() => this.destroy());

  private constructor(readonly ns: string) {}

  static create(): Testbed {
    if (process.getuid?.() !== 0) {
      throw new Error('the guest testbed needs root (network namespaces and taps); run the tests as root, as CI does');
    }
    const ns = `mcg-${process.pid}-${randomBytes(3).toString('hex')}`;
    ip('netns', 'add', ns);
    const tb = new Testbed(ns);
    try {
      tb.run('link', 'set', 'lo', 'up');
      for (const br of ['brsvc', 'brmig']) {
        tb.run('link', 'add', br, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
        tb.run('link', 'set', br, 'up');
      }
      tb.run('addr', 'add', `${SVC_HOST_IP}/24`, 'dev', 'brsvc');
      tb.run('addr', 'add', `${MIG_HOST_IP}/24`, 'dev', 'brmig');
    } catch (err) {
      tb.destroy();
      throw err;
    }
    return tb;
  }

  /** Runs `ip` inside the namespace. */
  run(...args: string[]): void {
    ip('-n', this.ns, ...args);
  }

  get wrapper(): string[] {
    return ['ip', 'netns', 'exec', this.ns];
  }

  addTap(network: 'svc' | 'mig'): string {
    const tap = `tap${this.taps++}`;
    this.run('tuntap', 'add', 'dev', tap, 'mode', 'tap');
    this.run('link', 'set', tap, 'master', network === 'svc' ? 'brsvc' : 'brmig');
    this.run('link', 'set', tap, 'up');
    return tap;
  }

  /** The tap the service bridge delivers frames for `mac` to now (what it learnt last), if it knows. */
  servicePortOf(mac: string): string | undefined {
    const fdb = execFileSync('bridge', ['-n', this.ns, 'fdb', 'show', 'br', 'brsvc'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const entry = fdb.split('\n').find((l) => l.startsWith(`${mac} dev `) && !l.includes(' permanent'));
    return entry?.split(' ')[2];
  }

  /** Cuts or restores a guest's link (the fail-safe tests break the migration link). */
  setLink(tap: string, up: boolean): void {
    this.run('link', 'set', tap, up ? 'up' : 'down');
  }

  destroy(): void {
    this.dropUndo();
    try {
      ip('netns', 'del', this.ns);
    } catch {
      /* already gone */
    }
  }
}

// The QEMU hypervisor driver: starts a VM from a kernel + initramfs, captures
// its serial console (events are lines the guest prints), talks QMP, and stops
// the VM by the PID it started. KVM is used where the host CPU really offers
// it; otherwise TCG (see shared FINDINGS: this host's /dev/kvm is unusable).
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { once } from 'node:events';
import { killOnInterrupt } from './on-interrupt.js';

export const QEMU_BIN = 'qemu-system-x86_64';

export type Accel = 'kvm' | 'tcg';

/** KVM only when /dev/kvm exists and the CPU has hardware virtualization (MCG_ACCEL overrides). */
export function chooseAccel(): Accel {
  const forced = process.env.MCG_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return forced;
  if (!existsSync('/dev/kvm')) return 'tcg';
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  return /^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo) ? 'kvm' : 'tcg';
}

/** Whether a preallocated VM also gets all of QEMU's memory locked: that needs root (RLIMIT_MEMLOCK). */
export function canLockMemory(): boolean {
  return process.getuid?.() === 0;
}

export interface NicSpec {
  /** tap device name (in the namespace QEMU runs in) */
  tap: string;
  mac: string;
}

export interface VmSpec {
  name: string;
  kernel: string;
  initrd: string;
  append: string;
  memoryMiB: number;
  nics: NicSpec[];
  /** wrap the command, e.g. ['ip', 'netns', 'exec', NS] */
  wrapper?: string[];
  consoleLog: string;
  qmpSocket?: string;
  extraArgs?: string[];
  /** CPU model (default: the host's under KVM, qemu64 under TCG) */
  cpu?: string;
  smp?: number;
  /** QEMU device model of the NICs (default virtio-net-pci) */
  nicModel?: string;
  /** keep the serial console's input open for send() */
  interactive?: boolean;
  /**
   * back the VM's memory with host memory before it runs, as Xen does for a domain: all guest
   * RAM (-mem-prealloc) and, as root, all of QEMU's memory, locked (-overcommit mem-lock=on),
   * TCG's translation buffer included (256 MiB instead of 1 GiB, so backing it stays cheap).
   * Otherwise the host faults each 2 MiB in on first touch, and a migration's downtime pays
   * for the guest frames it touches first and for the code TCG translates while the guest
   * stands still (on this host ~5 ms per 2 MiB; measured: docs/self-migration.md)
   */
  preallocate?: boolean;
}

export class Vm {
  private lines: string[] = [];
  /** Host time (performance.now()) at which each console line arrived. */
  readonly lineTimes: number[] = [];
  private waiters: { re: RegExp; from: number; resolve: (l: string) => void }[] = [];
  readonly exited: Promise<number | null>;

  private constructor(
    readonly spec: VmSpec,
    readonly child: ChildProcess,
  ) {
    const log = createWriteStream(spec.consoleLog);
    let partial = '';
    child.stdout!.on('data', (d: Buffer) => {
      log.write(d);
      partial += d.toString('latin1');
      const parts = partial.split(/\r?\n/);
      partial = parts.pop()!;
      for (const line of parts) this.onLine(line);
    });
    child.stderr!.on('data', (d: Buffer) => log.write(d));
    killOnInterrupt(child);
    this.exited = once(child, 'exit').then(([code]) => {
      log.end();
      return code as number | null;
    });
  }

  static start(spec: VmSpec, accel: Accel = chooseAccel()): Vm {
    const lockAll = spec.preallocate && canLockMemory();
    const args = [
      '-accel', lockAll && accel === 'tcg' ? 'tcg,tb-size=256' : accel,
      '-machine', 'q35', '-cpu', spec.cpu ?? (accel === 'kvm' ? 'host' : 'qemu64'),
      '-m', String(spec.memoryMiB), '-smp', String(spec.smp ?? 1),
      ...(spec.preallocate ? ['-mem-prealloc'] : []),
      ...(lockAll ? ['-overcommit', 'mem-lock=on'] : []),
      '-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio', '-monitor', 'none',
      '-kernel', spec.kernel, '-initrd', spec.initrd, '-append', spec.append,
      ...spec.nics.flatMap((n, i) => [
        '-netdev', `tap,id=n${i},ifname=${n.tap},script=no,downscript=no`,
        '-device', `${spec.nicModel ?? 'virtio-net-pci'},netdev=n${i},mac=${n.mac},romfile=`,
      ]),
      ...(spec.qmpSocket ? ['-qmp', `unix:${spec.qmpSocket},server=on,wait=off`] : []),
      ...(spec.extraArgs ?? []),
    ];
    const cmd = [...(spec.wrapper ?? []), QEMU_BIN, ...args];
    const child = spawn(cmd[0], cmd.slice(1), { stdio: [spec.interactive ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    return new Vm(spec, child);
  }

  private onLine(line: string): void {
    this.lines.push(line);
    this.lineTimes.push(performance.now());
    const at = this.lines.length - 1;
    this.waiters = this.waiters.filter((w) => {
      if (at >= w.from && w.re.test(line)) {
        w.resolve(line);
        return false;
      }
      return true;
    });
  }

  /** Types one line on the serial console (VMs started interactive). */
  send(line: string): void {
    if (!this.child.stdin) throw new Error(`${this.spec.name}: console input is closed (start it interactive)`);
    this.child.stdin.write(line + '\n');
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Console lines so far. */
  get console(): string[] {
    return this.lines;
  }

  /** Host time at which the last line matching `re` arrived, if one did. */
  timeOf(re: RegExp): number | undefined {
    let i = -1;
    this.lines.forEach((l, k) => {
      if (re.test(l)) i = k;
    });
    return i < 0 ? undefined : this.lineTimes[i];
  }

  /** Resolves with the first console line (from line `from` on) matching `re`. */
  waitFor(re: RegExp, timeoutMs: number, from = 0): Promise<string> {
    const seen = this.lines.slice(from).find((l) => re.test(l));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.spec.name}: no console line matching ${re} within ${timeoutMs} ms; last lines:\n${this.lines.slice(-15).join('\n')}`)), timeoutMs);
      timer.unref(); // a wait nobody needs any more must not keep the process alive
      const exitWatch = this.exited.then(() => {
        // A VM that is gone will never print it (unless it already did).
        setTimeout(() => reject(new Error(`${this.spec.name}: exited before printing ${re}; last lines:\n${this.lines.slice(-15).join('\n')}`)), 50);
      });
      void exitWatch;
      this.waiters.push({
        re,
        from,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
    });
  }

  /** Sends one QMP command (after the capabilities handshake) and returns its reply. */
  async qmp(command: string, args?: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (!this.spec.qmpSocket) throw new Error(`${this.spec.name}: started without a QMP socket`);
    const sock = connect(this.spec.qmpSocket);
    await once(sock, 'connect');
    let buf = '';
    const replies: Record<string, unknown>[] = [];
    const next = () =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const take = () => {
          const i = buf.indexOf('\n');
          if (i < 0) return false;
          const msg = JSON.parse(buf.slice(0, i));
          buf = buf.slice(i + 1);
          if (msg.event) return take();
          resolve(msg);
          return true;
        };
        if (take()) return;
        const on = (d: Buffer) => {
          buf += d.toString();
          if (take()) sock.off('data', on);
        };
        sock.on('data', on);
        sock.once('error', reject);
      });
    try {
      await next(); // greeting
      sock.write(JSON.stringify({ execute: 'qmp_capabilities' }) + '\n');
      await next();
      sock.write(JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}) }) + '\n');
      replies.push(await next());
    } finally {
      sock.destroy();
    }
    return replies[0];
  }

  /** Stops the VM by its PID (SIGKILL after a grace period). */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await this.exited;
    clearTimeout(t);
  }
}

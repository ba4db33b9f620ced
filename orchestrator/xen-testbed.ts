// A real Xen 4.17 host, emulated: QEMU boots Debian's hypervisor with a dom0
// that runs the xl toolstack (guest-linux/xen), and we drive dom0 through its
// console one shell line at a time. Files given at boot appear in dom0's /guest;
// each domain's console is copied to dom0's, tagged "[name] ".
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { onInterrupt } from '../node-agent/on-interrupt.js';
import { basename, join } from 'node:path';
import { Vm, chooseAccel, type NicSpec } from '../node-agent/qemu.js';
import { runBuildScript } from './selfmig.js';

export interface XenArtifacts {
  dir: string;
  xen: string;
  vmlinuz: string;
  dom0Initrd: string;
}

/** Builds (or finds cached) the testbed: guest-linux/xen/build.sh. */
export function buildXenTestbed(): XenArtifacts {
  const dir = runBuildScript('guest-linux/xen/build.sh', 'Xen testbed');
  return { dir, xen: join(dir, 'xen.elf'), vmlinuz: join(dir, 'vmlinuz'), dom0Initrd: join(dir, 'dom0.cpio.gz') };
}

export const DOM0_MEMORY_MIB = 768;
export const XEN_HOST_MEMORY_MIB = 2048;
const DOM0_BOOT_TIMEOUT_MS = 180_000;

export interface XenHostSpec {
  artifacts: XenArtifacts;
  /** files to place in dom0's /guest, by their name there */
  files: Record<string, string>;
  /** the host NIC, bridged into dom0's xenbr0 */
  nic?: NicSpec;
  wrapper?: string[];
  /** directory for the serial log and the combined initramfs */
  workDir: string;
}

export interface ShellResult {
  status: number;
  output: string[];
}

export class XenHost {
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(readonly vm: Vm) {}

  static async boot(spec: XenHostSpec): Promise<XenHost> {
    const initrd = join(spec.workDir, 'dom0-initrd');
    // Linux unpacks concatenated archives; zeros align the second one.
    const base = readFileSync(spec.artifacts.dom0Initrd);
    const pad = Buffer.alloc((4 - (base.length % 4)) % 4);
    writeFileSync(initrd, Buffer.concat([base, pad, guestArchive(spec.files, spec.workDir)]));
    const accel = chooseAccel();
    const vm = Vm.start({
      name: 'xen-host',
      kernel: spec.artifacts.xen,
      // Multiboot modules: dom0's kernel with its command line, then its initramfs.
      initrd: `${spec.artifacts.vmlinuz} console=hvc0 earlyprintk=xen loglevel=4,${initrd}`,
      append: `console=com1 com1=115200 dom0_mem=${DOM0_MEMORY_MIB}M,max:${DOM0_MEMORY_MIB}M`,
      memoryMiB: XEN_HOST_MEMORY_MIB,
      smp: 2,
      // TCG emulates SVM with nested paging; `-cpu max` corrupts dom0 processes (FINDINGS).
      cpu: accel === 'kvm' ? 'host' : 'qemu64,+svm,+npt',
      nicModel: 'e1000',
      nics: spec.nic ? [spec.nic] : [],
      wrapper: spec.wrapper,
      consoleLog: join(spec.workDir, 'xen-host.log'),
      interactive: true,
    }, accel);
    try {
      await vm.waitFor(/^MCG-DOM0 ready/, DOM0_BOOT_TIMEOUT_MS);
    } catch (err) {
      await vm.stop();
      throw err;
    }
    return new XenHost(vm);
  }

  /** Runs one shell line in dom0 (in order with other calls) and returns its status and output. */
  sh(line: string, timeoutMs = 120_000): Promise<ShellResult> {
    if (line.includes('\n')) throw new Error('dom0 commands are single lines');
    const run = this.queue.then(async () => {
      const from = this.vm.console.length;
      this.vm.send(line);
      const done = await this.vm.waitFor(/^MCG-DOM0 done \d+/, timeoutMs, from);
      const end = this.vm.console.lastIndexOf(done);
      const output = this.vm.console.slice(from, end).filter((l) => !/^\(XEN\)|^\[[ 0-9.]+\] |^\[[\w-]+\] /.test(l));
      return { status: Number(/done (\d+)/.exec(done)![1]), output };
    });
    this.queue = run.catch(() => {});
    return run;
  }

  /** Like sh(), but a non-zero status is an error carrying the output. */
  async must(line: string, timeoutMs?: number): Promise<string[]> {
    const r = await this.sh(line, timeoutMs);
    if (r.status !== 0) throw new Error(`dom0: \`${line}\` exited ${r.status}:\n${r.output.join('\n')}`);
    return r.output;
  }

  /** Console lines of domain `name` (dom0 must `follow` it). */
  domainConsole(name: string): string[] {
    const tag = `[${name}] `;
    return this.vm.console.filter((l) => l.startsWith(tag)).map((l) => l.slice(tag.length).replace(/\r+$/, ''));
  }

  /** Waits for a console line of domain `name` matching `re`. */
  waitForDomain(name: string, re: RegExp, timeoutMs: number): Promise<string> {
    return this.vm.waitFor(new RegExp(`^\\[${name}\\] .*${re.source}`), timeoutMs).then((l) => l.slice(name.length + 3));
  }

  /** Names of the running domains other than dom0. */
  async domains(): Promise<string[]> {
    const out = await this.must('xl list | tail -n +3 | cut -d" " -f1');
    return out.map((l) => l.trim()).filter(Boolean);
  }

  async shutdown(): Promise<void> {
    if (this.vm.running) this.vm.send('poweroff -f');
    await Promise.race([this.vm.exited, new Promise((r) => setTimeout(r, 5000).unref())]);
    await this.vm.stop();
  }
}

/** An uncompressed newc archive holding `files` under /guest (appended to dom0's initramfs). */
function guestArchive(files: Record<string, string>, workDir: string): Buffer {
  const stage = mkdtempSync(join(workDir, 'stage-'));
  try {
    mkdirSync(join(stage, 'guest'));
    for (const [name, from] of Object.entries(files)) {
      if (basename(name) !== name) throw new Error(`guest file name "${name}" must not contain a directory`);
      copyFileSync(from, join(stage, 'guest', name));
    }
    const r = spawnSync('sh', ['-c', 'find guest | cpio -o -H newc --quiet'], { cwd: stage, maxBuffer: 1 << 30 });
    if (r.status !== 0) throw new Error(`cpio failed: ${r.stderr}`);
    return r.stdout;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

export interface ScriptRun {
  status: number;
  output: string[];
  /** the Xen host's serial log (Xen, dom0 and tagged domain consoles) */
  serialLog: string;
}

/**
 * The testbed in one call: boots Xen + dom0 with `files` in /guest, runs
 * `script` there with bash, and powers everything off. The serial log is
 * written to `logDir` (kept); the rest of the scratch space is removed.
 */
export async function runXenScript(script: string, files: Record<string, string>, logDir: string, timeoutMs: number): Promise<ScriptRun> {
  const work = mkdtempSync(join(logDir, 'xen-run-'));
  const dropInitrd = () => rmSync(join(work, 'dom0-initrd'), { force: true }); // 10 MB; the log is what is kept
  const dropUndo = onInterrupt(dropInitrd);
  let host: XenHost | undefined;
  try {
    host = await XenHost.boot({ artifacts: buildXenTestbed(), files: { ...files, 'run.sh': script }, workDir: work });
    const r = await host.sh('bash /guest/run.sh', timeoutMs);
    return { ...r, serialLog: join(work, 'xen-host.log') };
  } finally {
    await host?.shutdown();
    dropUndo();
    dropInitrd();
  }
}

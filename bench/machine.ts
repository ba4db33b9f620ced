// What every benchmark table notes: the machine and the date.
import { cpus, totalmem, release } from 'node:os';

export function machineLine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  return `machine: ${cpus().length} x ${cpu.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}; date: ${new Date().toISOString()}`;
}

export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(cells[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

/** `--runs N` among a bench's arguments: how many runs per method, 1 to 20. */
export function runsArg(args: string[], dflt = 3): number {
  const i = args.indexOf('--runs');
  const runs = i >= 0 ? Number(args[i + 1]) : dflt;
  if (!Number.isInteger(runs) || runs < 1 || runs > 20) throw new RangeError('--runs takes a whole number from 1 to 20');
  return runs;
}

/** Runs fn repeatedly for about `ms` and returns operations per second. */
export function opsPerSecond(fn: () => void, ms = 400): number {
  for (let i = 0; i < 1000; i++) fn(); // warm up
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < ms) {
    for (let i = 0; i < 1000; i++) fn();
    n += 1000;
    t = performance.now();
  }
  return (n * 1000) / (t - t0);
}

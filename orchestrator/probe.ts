// The outside observer of a migrating guest, run inside the testbed namespace.
// Every INTERVAL ms it asks the guest's UDP counter service for a number; it
// keeps a TCP connection to the guest's counter stream; it relays one-off UDP
// commands for the harness. Commands arrive as JSON lines on stdin; answers
// and the final summary leave as JSON lines on stdout.
//   {"cmd":"udp","id":1,"to":"10.99.0.2:7009","data":"migrate ..."} -> {"id":1,"reply":"started"}
//   {"cmd":"mark"}  (no answer; the summary counts what arrives after it: sinceMark)
//   {"cmd":"stop"} -> {"summary":{...}} and exit
import { createSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: { target: { type: 'string', default: '10.99.0.2' }, 'interval-ms': { type: 'string', default: '5' }, 'no-tcp': { type: 'boolean', default: false } },
});
const target = args.target!;
const intervalMs = Number(args['interval-ms']);
const UDP_PORT = 7000;
const TCP_PORT = 7001;

const start = performance.now();
const t = () => performance.now() - start;
const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');

// --- UDP counter ---
const udp = createSocket('udp4');
let sent = 0;
const counters: number[] = [];
let lastReplyAt = -1;
let maxGap = 0;
let maxGapEndsAt = 0;
udp.on('message', (m) => {
  if (m.length !== 16) return;
  const now = t();
  counters.push(Number(m.readBigUInt64LE(8)));
  if (lastReplyAt >= 0 && now - lastReplyAt > maxGap) {
    maxGap = now - lastReplyAt;
    maxGapEndsAt = now;
  }
  lastReplyAt = now;
});
udp.bind(0);
const tick = setInterval(() => {
  const req = Buffer.alloc(16);
  req.writeBigUInt64LE(BigInt(sent++), 0);
  udp.send(req, UDP_PORT, target);
}, intervalMs);

// --- TCP counter stream ---
let tcp: Socket | undefined;
const tcpNumbers: number[] = [];
let tcpPartial = '';
let tcpLastAt = -1;
let tcpMaxGap = 0;
let tcpClosed = false;
function openTcp(): void {
  tcp = connect(TCP_PORT, target);
  tcp.setNoDelay(true);
  tcp.on('connect', () => out({ ready: true }));
  tcp.on('data', (d) => {
    const now = t();
    if (tcpLastAt >= 0) tcpMaxGap = Math.max(tcpMaxGap, now - tcpLastAt);
    tcpLastAt = now;
    tcpPartial += d.toString();
    const lines = tcpPartial.split('\n');
    tcpPartial = lines.pop()!;
    for (const l of lines) tcpNumbers.push(Number(l));
  });
  tcp.on('error', () => {});
  tcp.on('close', () => {
    tcpClosed = true;
  });
}
// Without the stream the guest sends nothing unasked: only its answers show where it is.
if (args['no-tcp']) out({ ready: true });
else openTcp();

let mark = { udp: 0, tcp: 0 };

// --- relayed commands ---
const cmdSock = createSocket('udp4');
const pending = new Map<string, number>();
cmdSock.on('message', (m, r) => {
  const key = `${r.address}:${r.port}`;
  const id = pending.get(key);
  if (id !== undefined) {
    pending.delete(key);
    out({ id, reply: m.toString() });
  }
});
cmdSock.bind(0);

function contiguity(xs: number[]) {
  const sorted = [...xs].sort((a, b) => a - b);
  let duplicates = 0;
  let missing = 0;
  for (let i = 1; i < sorted.length; i++) {
    const d = sorted[i] - sorted[i - 1];
    if (d === 0) duplicates++;
    else if (d > 1) missing += d - 1;
  }
  return { first: sorted[0] ?? null, last: sorted.at(-1) ?? null, duplicates, missing, inOrder: xs.every((x, i) => i === 0 || x > xs[i - 1]) };
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const cmd = JSON.parse(line);
  if (cmd.cmd === 'udp') {
    const [host, port] = String(cmd.to).split(':');
    pending.set(`${host}:${port}`, cmd.id);
    cmdSock.send(Buffer.from(cmd.data), Number(port), host);
  } else if (cmd.cmd === 'mark') {
    // The migration's outcome is known: what arrives from now on shows the services still run.
    mark = { udp: counters.length, tcp: tcpNumbers.length };
  } else if (cmd.cmd === 'stop') {
    clearInterval(tick);
    out({
      summary: {
        seconds: t() / 1000,
        udp: { sent, replies: counters.length, sinceMark: counters.length - mark.udp, maxGapMs: maxGap, maxGapEndsAtMs: maxGapEndsAt, ...contiguity(counters) },
        tcp: { numbers: tcpNumbers.length, sinceMark: tcpNumbers.length - mark.tcp, maxGapMs: tcpMaxGap, closed: tcpClosed, ...contiguity(tcpNumbers) },
      },
    });
    tcp?.destroy();
    udp.close();
    cmdSock.close();
    process.exit(0);
  }
});

// The node's durable spend ledger: the last accepted token of every chain.
//
// An append-only log of CRC-framed records, group-committed: the agent stages
// the records of a batch of datagrams (memory is updated at once, so the next
// datagram verifies against it), then one write + fdatasync covers the batch,
// and only then are the OK replies sent. After a crash, replay stops at the
// first torn or corrupt record: everything before it was synced, everything
// after it was never acknowledged. Opening compacts the log to one record per
// chain (temp file, fsync, rename, fsync dir).
import { closeSync, existsSync, fdatasync, fsyncSync, openSync, readFileSync, renameSync, statSync, write, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { toHex } from '../tokens/_assert.js';
import { ensurePrivateDir, fsyncDir, PRIVATE_FILE_MODE } from '../tokens/_durable.js';
import { BOOT_TOKEN_BYTES, decodeBootToken, type BootToken } from '../tokens/boot-token.js';
import { CHAIN_ID_BYTES, CHAIN_VALUE_BYTES } from '../tokens/chain.js';

const FILE_MAGIC = Buffer.from('MCGL\x00\x00\x00\x01', 'latin1');
const FRAME_BYTES = 8; // u32 length, u32 crc32 of the payload
const RECORD_OPEN = 1;
const RECORD_PAY = 2;
const OPEN_PAYLOAD_BYTES = 1 + BOOT_TOKEN_BYTES + 4 + CHAIN_VALUE_BYTES;
const PAY_PAYLOAD_BYTES = 1 + CHAIN_ID_BYTES + 4 + CHAIN_VALUE_BYTES;
/** Compact online once the log passes this size (it is also compacted on every open). */
export const COMPACT_LOG_BYTES = 64 * 1024 * 1024;

export interface ChainState {
  token: BootToken;
  chainIdHex: string;
  /** Tokens v[lastIndex..n-1] have been spent; v[lastIndex] is the last accepted value. */
  lastIndex: number;
  lastValue: Uint8Array;
}

export function grantedMibSeconds(chain: ChainState): number {
  return (2 ** chain.token.log2Length - chain.lastIndex) * chain.token.mibSecondsPerToken;
}

// Records are built in place inside their frame: one allocation per record.
function openRecord(token: BootToken, index: number, value: Uint8Array): Buffer {
  const f = Buffer.allocUnsafe(FRAME_BYTES + OPEN_PAYLOAD_BYTES);
  const p = f.subarray(FRAME_BYTES);
  p[0] = RECORD_OPEN;
  p.set(token.bytes, 1);
  p.writeUInt32BE(index, 1 + BOOT_TOKEN_BYTES);
  p.set(value, 5 + BOOT_TOKEN_BYTES);
  return seal(f);
}

function payRecord(chainId: Uint8Array, index: number, value: Uint8Array): Buffer {
  const f = Buffer.allocUnsafe(FRAME_BYTES + PAY_PAYLOAD_BYTES);
  const p = f.subarray(FRAME_BYTES);
  p[0] = RECORD_PAY;
  p.set(chainId, 1);
  p.writeUInt32BE(index, 1 + CHAIN_ID_BYTES);
  p.set(value, 5 + CHAIN_ID_BYTES);
  return seal(f);
}

/** Fills in the frame header (length, CRC-32 of the payload). */
function seal(f: Buffer): Buffer {
  const payload = f.subarray(FRAME_BYTES);
  f.writeUInt32BE(payload.length, 0);
  f.writeUInt32BE(crc32(payload), 4);
  return f;
}

/** Replays a log image; returns the chains and the byte length of the valid prefix. */
function replay(image: Buffer): { chains: Map<string, ChainState>; validBytes: number } {
  const chains = new Map<string, ChainState>();
  if (image.length < FILE_MAGIC.length || !image.subarray(0, FILE_MAGIC.length).equals(FILE_MAGIC)) {
    if (image.length === 0) return { chains, validBytes: 0 };
    throw new Error('not an mcg ledger (bad magic); refusing to touch it');
  }
  let off = FILE_MAGIC.length;
  while (off + FRAME_BYTES <= image.length) {
    const len = image.readUInt32BE(off);
    if (len !== OPEN_PAYLOAD_BYTES && len !== PAY_PAYLOAD_BYTES) break;
    if (off + FRAME_BYTES + len > image.length) break;
    const payload = image.subarray(off + FRAME_BYTES, off + FRAME_BYTES + len);
    if (crc32(payload) !== image.readUInt32BE(off + 4)) break;
    if (payload[0] === RECORD_OPEN && len === OPEN_PAYLOAD_BYTES) {
      const token = decodeBootToken(new Uint8Array(payload.subarray(1, 1 + BOOT_TOKEN_BYTES)));
      if (typeof token === 'string') break;
      const chainIdHex = toHex(token.chainId);
      chains.set(chainIdHex, {
        token,
        chainIdHex,
        lastIndex: payload.readUInt32BE(1 + BOOT_TOKEN_BYTES),
        lastValue: new Uint8Array(payload.subarray(5 + BOOT_TOKEN_BYTES)),
      });
    } else if (payload[0] === RECORD_PAY && len === PAY_PAYLOAD_BYTES) {
      const chain = chains.get(toHex(payload.subarray(1, 1 + CHAIN_ID_BYTES)));
      if (!chain) break;
      chain.lastIndex = payload.readUInt32BE(1 + CHAIN_ID_BYTES);
      chain.lastValue = new Uint8Array(payload.subarray(5 + CHAIN_ID_BYTES));
    } else {
      break;
    }
    off += FRAME_BYTES + len;
  }
  return { chains, validBytes: off };
}

export class Ledger {
  private staged: Buffer[] = [];
  private stagedBytes = 0;
  private logBytes: number;

  private constructor(
    private readonly dir: string,
    private fd: number,
    readonly chains: Map<string, ChainState>,
  ) {
    this.logBytes = statSync(this.path).size;
  }

  get path(): string {
    return join(this.dir, 'ledger.log');
  }

  /** Reads the ledger without changing it (for `mcg node status`). */
  static read(dir: string): Map<string, ChainState> {
    const path = join(dir, 'ledger.log');
    if (!existsSync(path)) return new Map();
    return replay(readFileSync(path)).chains;
  }

  /** Opens for writing: replays, drops a torn tail, compacts. One writer per dir (the agent's lock). */
  static open(dir: string): Ledger {
    ensurePrivateDir(dir);
    const path = join(dir, 'ledger.log');
    const { chains } = replay(existsSync(path) ? readFileSync(path) : Buffer.alloc(0));
    writeCompacted(dir, chains);
    return new Ledger(dir, openSync(path, 'a', PRIVATE_FILE_MODE), chains);
  }

  get(chainIdHex: string): ChainState | undefined {
    return this.chains.get(chainIdHex);
  }

  /** Records a new chain with its first payment (memory now, disk at the next flush). */
  stageOpen(token: BootToken, index: number, value: Uint8Array): ChainState {
    const chainIdHex = toHex(token.chainId);
    const chain: ChainState = { token, chainIdHex, lastIndex: index, lastValue: value.slice() };
    this.chains.set(chainIdHex, chain);
    this.stage(openRecord(token, index, value));
    return chain;
  }

  stagePay(chain: ChainState, index: number, value: Uint8Array): void {
    chain.lastIndex = index;
    chain.lastValue = value.slice();
    this.stage(payRecord(chain.token.chainId, index, value));
  }

  private stage(record: Buffer): void {
    this.staged.push(record);
    this.stagedBytes += record.length;
  }

  get hasStaged(): boolean {
    return this.staged.length > 0;
  }

  /** Writes and syncs everything staged so far: one write, one fdatasync. */
  flush(): Promise<void> {
    const batch = Buffer.concat(this.staged, this.stagedBytes);
    this.staged = [];
    this.stagedBytes = 0;
    return new Promise((resolve, reject) => {
      write(this.fd, batch, 0, batch.length, null, (err, written) => {
        if (err) return reject(err);
        if (written !== batch.length) return reject(new Error(`short ledger write (${written} of ${batch.length} bytes)`));
        fdatasync(this.fd, (syncErr) => {
          if (syncErr) return reject(syncErr);
          this.logBytes += batch.length;
          resolve();
        });
      });
    });
  }

  /** Compacts when the log is large; call only with nothing staged or in flight. */
  maybeCompact(): void {
    if (this.logBytes < COMPACT_LOG_BYTES || this.hasStaged) return;
    closeSync(this.fd);
    writeCompacted(this.dir, this.chains);
    this.fd = openSync(this.path, 'a', PRIVATE_FILE_MODE);
    this.logBytes = statSync(this.path).size;
  }

  close(): void {
    closeSync(this.fd);
  }
}

function writeCompacted(dir: string, chains: Map<string, ChainState>): void {
  const records: Buffer[] = [FILE_MAGIC];
  for (const c of chains.values()) records.push(openRecord(c.token, c.lastIndex, c.lastValue));
  const path = join(dir, 'ledger.log');
  const tmp = join(dir, '.ledger.log.tmp');
  const fd = openSync(tmp, 'w', PRIVATE_FILE_MODE);
  writeSync(fd, Buffer.concat(records));
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, path);
  fsyncDir(dir);
}

// UDP admission datagrams: mirror of native/include/mcg/wire.h (sizes and
// offsets are compared with the C header by native/layout.test.ts).
import { BOOT_TOKEN_BYTES, WIRE_VERSION } from '../tokens/boot-token.js';
import { CHAIN_ID_BYTES, CHAIN_VALUE_BYTES } from '../tokens/chain.js';

export const MSG_MAGIC = 'MCGP';
export const MSG_HEADER_BYTES = 12;
export const PAYMENT_BYTES = 4 + CHAIN_VALUE_BYTES;
export const MSG_BOOT_BYTES = MSG_HEADER_BYTES + BOOT_TOKEN_BYTES + PAYMENT_BYTES;
export const MSG_PAY_BYTES = MSG_HEADER_BYTES + CHAIN_ID_BYTES + PAYMENT_BYTES;
export const MSG_STATUS_BYTES = 64;
export const MSG_OK_BYTES = MSG_HEADER_BYTES + CHAIN_ID_BYTES + 4 + 4 + 8 + 8;
export const MSG_ERR_BYTES = MSG_HEADER_BYTES + 2 + 2 + CHAIN_ID_BYTES;
/** Anything longer is refused before parsing. */
export const MAX_DATAGRAM_BYTES = MSG_BOOT_BYTES;

export const MsgType = { BOOT: 1, PAY: 2, STATUS: 3, OK: 0x81, ERR: 0x82 } as const;

export const ErrCode = {
  TRUNCATED: 1,
  OVERSIZED: 2,
  BAD_MAGIC: 3,
  BAD_VERSION: 4,
  BAD_TYPE: 5,
  MALFORMED: 6,
  WRONG_NODE: 7,
  UNKNOWN_VENDOR_KEY: 8,
  BAD_SIGNATURE: 9,
  EXPIRED: 10,
  UNKNOWN_CHAIN: 11,
  REPLAY: 12,
  SKIP_TOO_FAR: 13,
  MISMATCH: 14,
  RATE_LIMITED: 15,
  INTERNAL: 16,
} as const;
export type ErrCodeName = keyof typeof ErrCode;
export const ERR_NAMES: Record<number, ErrCodeName> = Object.fromEntries(
  Object.entries(ErrCode).map(([k, v]) => [v, k as ErrCodeName]),
);

export interface Payment {
  index: number;
  value: Uint8Array;
}

export type Request =
  | { type: 'BOOT'; requestId: number; token: Uint8Array; payment: Payment }
  | { type: 'PAY'; requestId: number; chainId: Uint8Array; payment: Payment }
  | { type: 'STATUS'; requestId: number; chainId: Uint8Array };

export type Reply =
  | { type: 'OK'; requestId: number; chainId: Uint8Array; lastIndex: number; grantedMibSeconds: number; expiresUnix: number }
  | { type: 'ERR'; requestId: number; code: number; chainId: Uint8Array };

/** A request that could not be parsed; requestId is 0 when the header was unreadable. */
export interface DecodeError {
  error: ErrCodeName;
  requestId: number;
}

const EXPECTED_BYTES: Record<number, number> = {
  [MsgType.BOOT]: MSG_BOOT_BYTES,
  [MsgType.PAY]: MSG_PAY_BYTES,
  [MsgType.STATUS]: MSG_STATUS_BYTES,
};

function header(buf: Buffer, type: number, requestId: number): void {
  buf.write(MSG_MAGIC, 0, 'latin1');
  buf[4] = WIRE_VERSION;
  buf[5] = type;
  buf.writeUInt32BE(requestId >>> 0, 8);
}

export function decodeRequest(msg: Buffer): Request | DecodeError {
  if (msg.length > MAX_DATAGRAM_BYTES) return { error: 'OVERSIZED', requestId: 0 };
  if (msg.length < MSG_HEADER_BYTES) return { error: 'TRUNCATED', requestId: 0 };
  if (msg.toString('latin1', 0, 4) !== MSG_MAGIC) return { error: 'BAD_MAGIC', requestId: 0 };
  const requestId = msg.readUInt32BE(8);
  if (msg[4] !== WIRE_VERSION) return { error: 'BAD_VERSION', requestId };
  const type = msg[5];
  const expected = EXPECTED_BYTES[type];
  if (expected === undefined) return { error: 'BAD_TYPE', requestId };
  if (msg.length < expected) return { error: 'TRUNCATED', requestId };
  if (msg.length > expected) return { error: 'OVERSIZED', requestId };
  if (msg.readUInt16BE(6) !== 0) return { error: 'MALFORMED', requestId };
  const bytes = (off: number, len: number) => new Uint8Array(msg.buffer, msg.byteOffset + off, len);
  const payment = (off: number): Payment => ({ index: msg.readUInt32BE(off), value: bytes(off + 4, CHAIN_VALUE_BYTES) });
  switch (type) {
    case MsgType.BOOT:
      return { type: 'BOOT', requestId, token: bytes(MSG_HEADER_BYTES, BOOT_TOKEN_BYTES), payment: payment(MSG_HEADER_BYTES + BOOT_TOKEN_BYTES) };
    case MsgType.PAY:
      return { type: 'PAY', requestId, chainId: bytes(MSG_HEADER_BYTES, CHAIN_ID_BYTES), payment: payment(MSG_HEADER_BYTES + CHAIN_ID_BYTES) };
    default: {
      const padding = msg.subarray(MSG_HEADER_BYTES + CHAIN_ID_BYTES);
      if (padding.some((b) => b !== 0)) return { error: 'MALFORMED', requestId };
      return { type: 'STATUS', requestId, chainId: bytes(MSG_HEADER_BYTES, CHAIN_ID_BYTES) };
    }
  }
}

export function encodeRequest(req: Request): Buffer {
  const buf = Buffer.alloc(req.type === 'BOOT' ? MSG_BOOT_BYTES : req.type === 'PAY' ? MSG_PAY_BYTES : MSG_STATUS_BYTES);
  header(buf, MsgType[req.type], req.requestId);
  let off = MSG_HEADER_BYTES;
  if (req.type === 'BOOT') {
    buf.set(req.token, off);
    off += BOOT_TOKEN_BYTES;
  } else {
    buf.set(req.chainId, off);
    off += CHAIN_ID_BYTES;
  }
  if (req.type !== 'STATUS') {
    buf.writeUInt32BE(req.payment.index, off);
    buf.set(req.payment.value, off + 4);
  }
  return buf;
}

export function encodeReply(reply: Reply): Buffer {
  if (reply.type === 'OK') {
    const buf = Buffer.alloc(MSG_OK_BYTES);
    header(buf, MsgType.OK, reply.requestId);
    buf.set(reply.chainId, MSG_HEADER_BYTES);
    buf.writeUInt32BE(reply.lastIndex, 28);
    buf.writeBigUInt64BE(BigInt(reply.grantedMibSeconds), 36);
    buf.writeBigUInt64BE(BigInt(reply.expiresUnix), 44);
    return buf;
  }
  const buf = Buffer.alloc(MSG_ERR_BYTES);
  header(buf, MsgType.ERR, reply.requestId);
  buf.writeUInt16BE(reply.code, 12);
  buf.set(reply.chainId, 16);
  return buf;
}

export function decodeReply(msg: Buffer): Reply | undefined {
  if (msg.length < MSG_HEADER_BYTES || msg.toString('latin1', 0, 4) !== MSG_MAGIC || msg[4] !== WIRE_VERSION) return undefined;
  const requestId = msg.readUInt32BE(8);
  const chainId = (off: number) => new Uint8Array(msg.subarray(off, off + CHAIN_ID_BYTES));
  if (msg[5] === MsgType.OK && msg.length === MSG_OK_BYTES) {
    return {
      type: 'OK',
      requestId,
      chainId: chainId(12),
      lastIndex: msg.readUInt32BE(28),
      grantedMibSeconds: Number(msg.readBigUInt64BE(36)),
      expiresUnix: Number(msg.readBigUInt64BE(44)),
    };
  }
  if (msg[5] === MsgType.ERR && msg.length === MSG_ERR_BYTES) {
    return { type: 'ERR', requestId, code: msg.readUInt16BE(12), chainId: chainId(16) };
  }
  return undefined;
}

// The signed boot token: fixed 208-byte layout, mirror of struct mcg_boot_token
// in native/include/mcg/wire.h. All integers big-endian.
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { createHash } from 'node:crypto';
import { abytes, aint, astring } from './_assert.js';
import { CHAIN_ID_BYTES, CHAIN_MAX_LOG2_LENGTH, CHAIN_VALUE_BYTES } from './chain.js';

export const BOOT_TOKEN_MAGIC = 'MCGB';
export const WIRE_VERSION = 1;
export const NAME_BYTES = 32;
export const VENDOR_KEY_ID_BYTES = 8;
export const ED25519_SIGNATURE_BYTES = 64;
export const BOOT_TOKEN_BYTES = 208;
export const BOOT_TOKEN_SIGNED_BYTES = BOOT_TOKEN_BYTES - ED25519_SIGNATURE_BYTES;

/** Byte offsets of struct mcg_boot_token (checked against the C header by a test). */
export const BOOT_OFFSETS = {
  magic: 0,
  version: 4,
  log2_length: 5,
  reserved: 6,
  chain_id: 8,
  customer: 24,
  node_id: 56,
  mib_seconds_per_token: 88,
  expires_unix: 96,
  vendor_key_id: 104,
  anchor: 112,
  signature: 144,
} as const;

export interface BootTokenFields {
  log2Length: number;
  chainId: Uint8Array;
  customer: string;
  nodeId: string;
  mibSecondsPerToken: number;
  expiresUnix: number;
  vendorKeyId: Uint8Array;
  anchor: Uint8Array;
}

export interface BootToken extends BootTokenFields {
  signature: Uint8Array;
  bytes: Uint8Array;
}

export function vendorKeyId(publicKey: KeyObject): Uint8Array {
  return new Uint8Array(createHash('sha256').update(rawPublicKey(publicKey)).digest().subarray(0, VENDOR_KEY_ID_BYTES));
}

export function rawPublicKey(publicKey: KeyObject): Uint8Array {
  const jwk = publicKey.export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new TypeError('"publicKey" expected an Ed25519 key');
  return new Uint8Array(Buffer.from(jwk.x, 'base64url'));
}

function putName(buf: Buffer, offset: number, name: string, field: string): void {
  astring(name, NAME_BYTES, field);
  buf.fill(0, offset, offset + NAME_BYTES);
  buf.write(name, offset, 'utf8');
}

function getName(buf: Buffer, offset: number): string | null {
  const raw = buf.subarray(offset, offset + NAME_BYTES);
  const end = raw.indexOf(0);
  const used = end === -1 ? raw : raw.subarray(0, end);
  if (end !== -1 && raw.subarray(end).some((b) => b !== 0)) return null;
  if (used.length === 0) return null;
  const text = used.toString('utf8');
  return Buffer.byteLength(text) === used.length ? text : null;
}

export function encodeBootToken(fields: BootTokenFields, privateKey: KeyObject): BootToken {
  aint(fields.log2Length, 1, CHAIN_MAX_LOG2_LENGTH, 'log2Length');
  abytes(fields.chainId, CHAIN_ID_BYTES, 'chainId');
  abytes(fields.anchor, CHAIN_VALUE_BYTES, 'anchor');
  abytes(fields.vendorKeyId, VENDOR_KEY_ID_BYTES, 'vendorKeyId');
  aint(fields.mibSecondsPerToken, 1, Number.MAX_SAFE_INTEGER, 'mibSecondsPerToken');
  aint(fields.expiresUnix, 0, Number.MAX_SAFE_INTEGER, 'expiresUnix');
  const buf = Buffer.alloc(BOOT_TOKEN_BYTES);
  buf.write(BOOT_TOKEN_MAGIC, BOOT_OFFSETS.magic, 'latin1');
  buf[BOOT_OFFSETS.version] = WIRE_VERSION;
  buf[BOOT_OFFSETS.log2_length] = fields.log2Length;
  buf.set(fields.chainId, BOOT_OFFSETS.chain_id);
  putName(buf, BOOT_OFFSETS.customer, fields.customer, 'customer');
  putName(buf, BOOT_OFFSETS.node_id, fields.nodeId, 'nodeId');
  buf.writeBigUInt64BE(BigInt(fields.mibSecondsPerToken), BOOT_OFFSETS.mib_seconds_per_token);
  buf.writeBigUInt64BE(BigInt(fields.expiresUnix), BOOT_OFFSETS.expires_unix);
  buf.set(fields.vendorKeyId, BOOT_OFFSETS.vendor_key_id);
  buf.set(fields.anchor, BOOT_OFFSETS.anchor);
  const signature = sign(null, buf.subarray(0, BOOT_TOKEN_SIGNED_BYTES), privateKey);
  buf.set(signature, BOOT_OFFSETS.signature);
  return { ...fields, signature: new Uint8Array(signature), bytes: new Uint8Array(buf) };
}

export type BootTokenProblem = 'bad-magic' | 'bad-version' | 'malformed';

/** Parses without checking the signature; null fields mean the layout is wrong. */
export function decodeBootToken(bytes: Uint8Array): BootToken | BootTokenProblem {
  abytes(bytes, BOOT_TOKEN_BYTES, 'bootToken');
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (buf.toString('latin1', 0, 4) !== BOOT_TOKEN_MAGIC) return 'bad-magic';
  if (buf[BOOT_OFFSETS.version] !== WIRE_VERSION) return 'bad-version';
  const log2Length = buf[BOOT_OFFSETS.log2_length];
  const customer = getName(buf, BOOT_OFFSETS.customer);
  const nodeId = getName(buf, BOOT_OFFSETS.node_id);
  const mib = buf.readBigUInt64BE(BOOT_OFFSETS.mib_seconds_per_token);
  const expires = buf.readBigUInt64BE(BOOT_OFFSETS.expires_unix);
  if (
    log2Length < 1 || log2Length > CHAIN_MAX_LOG2_LENGTH || buf.readUInt16BE(BOOT_OFFSETS.reserved) !== 0 ||
    customer === null || nodeId === null || mib === 0n || mib > BigInt(Number.MAX_SAFE_INTEGER) ||
    expires > BigInt(Number.MAX_SAFE_INTEGER)
  ) {
    return 'malformed';
  }
  const slice = (off: number, len: number) => new Uint8Array(buf.subarray(off, off + len));
  return {
    log2Length,
    chainId: slice(BOOT_OFFSETS.chain_id, CHAIN_ID_BYTES),
    customer,
    nodeId,
    mibSecondsPerToken: Number(mib),
    expiresUnix: Number(expires),
    vendorKeyId: slice(BOOT_OFFSETS.vendor_key_id, VENDOR_KEY_ID_BYTES),
    anchor: slice(BOOT_OFFSETS.anchor, CHAIN_VALUE_BYTES),
    signature: slice(BOOT_OFFSETS.signature, ED25519_SIGNATURE_BYTES),
    bytes: new Uint8Array(buf),
  };
}

export function verifyBootTokenSignature(token: BootToken, publicKey: KeyObject): boolean {
  return verify(null, token.bytes.subarray(0, BOOT_TOKEN_SIGNED_BYTES), publicKey, token.signature);
}

export function loadPublicKey(pem: string): KeyObject {
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new TypeError('expected an Ed25519 public key (PEM)');
  return key;
}

export function loadPrivateKey(pem: string): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new TypeError('expected an Ed25519 private key (PEM)');
  return key;
}

// The hash-chain construction (mirror of native/include/mcg/chain.h):
//   v[i] = SHA-256(chain_id[16] || be32(i mod 2^32) || v[i-1]),  v[0] = secret seed.
// The anchor v[n] is public; tokens are spent in reverse order.
import { createHash, hash as oneShotHash } from 'node:crypto';
import { abytes, aint } from './_assert.js';

export const CHAIN_ID_BYTES = 16;
export const CHAIN_VALUE_BYTES = 32;
export const CHAIN_STEP_INPUT_BYTES = CHAIN_ID_BYTES + 4 + CHAIN_VALUE_BYTES;
/** A node accepts a token at most this many steps below the last one (lost datagrams). */
export const CHAIN_MAX_SKIP = 16;
/** Chains are 2^k long; binary pebbling needs a power of two. */
export const CHAIN_MAX_LOG2_LENGTH = 32;
export const CHAIN_MAX_INDEX = 2 ** CHAIN_MAX_LOG2_LENGTH;

// crypto.hash (Node >= 20.12) skips the Hash object: ~2x faster for one block.
const sha256: (data: Uint8Array) => Buffer =
  typeof oneShotHash === 'function'
    ? (data) => oneShotHash('sha256', data, 'buffer') as unknown as Buffer
    : (data) => createHash('sha256').update(data).digest();

/** One step: v[index] from v[index-1]. Reuses `scratch` (52 bytes) when given. */
export function chainStep(
  chainId: Uint8Array,
  index: number,
  prev: Uint8Array,
  scratch: Uint8Array = new Uint8Array(CHAIN_STEP_INPUT_BYTES),
): Uint8Array {
  scratch.set(chainId, 0);
  const i = index % 2 ** 32;
  scratch[16] = i >>> 24;
  scratch[17] = (i >>> 16) & 0xff;
  scratch[18] = (i >>> 8) & 0xff;
  scratch[19] = i & 0xff;
  scratch.set(prev, 20);
  return sha256(scratch); // a Buffer is a Uint8Array: no copy on the hot path
}

/** v[from + steps] from v[from]. */
export function chainWalk(chainId: Uint8Array, from: number, steps: number, value: Uint8Array): Uint8Array {
  abytes(chainId, CHAIN_ID_BYTES, 'chainId');
  abytes(value, CHAIN_VALUE_BYTES, 'value');
  aint(from, 0, CHAIN_MAX_INDEX, 'from');
  aint(steps, 0, CHAIN_MAX_INDEX - from, 'steps');
  const scratch = new Uint8Array(CHAIN_STEP_INPUT_BYTES);
  let v = value;
  for (let i = 1; i <= steps; i++) v = chainStep(chainId, from + i, v, scratch);
  return v;
}

export function chainLength(log2Length: number): number {
  return 2 ** aint(log2Length, 1, CHAIN_MAX_LOG2_LENGTH, 'log2Length');
}

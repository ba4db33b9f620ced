// The verifier the node agent runs: TS port of mcg_chain_verify()
// (native/src/chain.c). Same verdict numbers; checked against the C code by
// shared vectors and a randomized differential test.
import { timingSafeEqual } from 'node:crypto';
import { CHAIN_MAX_SKIP, CHAIN_STEP_INPUT_BYTES, chainStep } from '../tokens/chain.js';

export const Verdict = { OK: 0, REPLAY: 1, SKIP_TOO_FAR: 2, MISMATCH: 3 } as const;
export type VerdictValue = (typeof Verdict)[keyof typeof Verdict];

const scratch = new Uint8Array(CHAIN_STEP_INPUT_BYTES);

/**
 * Accepts `value` at `index` iff lastIndex - maxSkip <= index < lastIndex and
 * walking it forward to lastIndex gives lastValue (constant-time compare).
 * Costs at most maxSkip hashes. Inputs are trusted to have the right lengths
 * (the wire decoder guarantees them).
 */
export function verifyToken(
  chainId: Uint8Array,
  lastIndex: number,
  lastValue: Uint8Array,
  index: number,
  value: Uint8Array,
  maxSkip: number = CHAIN_MAX_SKIP,
): VerdictValue {
  if (index >= lastIndex) return Verdict.REPLAY;
  if (lastIndex - index > maxSkip) return Verdict.SKIP_TOO_FAR;
  let v = value;
  for (let i = index + 1; i <= lastIndex; i++) v = chainStep(chainId, i, v, scratch);
  return timingSafeEqual(v, lastValue) ? Verdict.OK : Verdict.MISMATCH;
}

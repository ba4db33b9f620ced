// Regenerates chain.json from the TS implementation with a fixed seed stream.
// The file is frozen: the C and TS implementations must both reproduce it.
// Run: node native/test/vectors/make-chain-vectors.mjs > native/test/vectors/chain.json
import { createHash } from 'node:crypto';
import { chainWalk } from '../../../dist/tokens/chain.js';
import { verifyToken } from '../../../dist/node-agent/verifier.js';

let counter = 0;
const det = (len) => {
  const out = Buffer.alloc(len);
  for (let off = 0; off < len; off += 32) createHash('sha256').update(`mcg-vectors-${counter++}`).digest().copy(out, off);
  return new Uint8Array(out);
};
const hex = (b) => Buffer.from(b).toString('hex');
const walk = [];
for (const [from, steps] of [[0, 0], [0, 1], [0, 2], [1, 1], [7, 9], [1023, 1], [65535, 3], [2 ** 31, 2], [2 ** 32 - 3, 3], [1000, 100]]) {
  const chainId = det(16);
  const value = det(32);
  walk.push({ chainId: hex(chainId), from, steps, value: hex(value), expected: hex(chainWalk(chainId, from, steps, value)) });
}
const verify = [];
const chainId = det(16);
const seedAt = 100;
const base = det(32);
const at = (i) => chainWalk(chainId, seedAt, i - seedAt, base);
const v = (name, lastIndex, index, value) =>
  verify.push({ name, chainId: hex(chainId), lastIndex, lastValue: hex(at(lastIndex)), index, value: hex(value), verdict: verifyToken(chainId, lastIndex, at(lastIndex), index, value) });
v('next token', 200, 199, at(199));
v('skip of 16 (window edge)', 200, 184, at(184));
v('skip of 17 (beyond window)', 200, 183, at(183));
v('replay of the last accepted', 200, 200, at(200));
v('index above last accepted', 200, 250, at(250));
v('wrong value', 200, 199, at(198));
v('random value', 200, 190, det(32));
v('value from another chain', 200, 199, chainWalk(det(16), seedAt, 99, base));
v('index 0 (last token)', 116, 100, at(100));
process.stdout.write(JSON.stringify({
  _comment: 'Known answers for mcg hash chains (docs/tokens.md). walk: v[from+steps] from v[from]; verify: verdict 0 OK, 1 REPLAY, 2 SKIP_TOO_FAR, 3 MISMATCH with MAX_SKIP 16. Made by native/test/vectors/make-chain-vectors.mjs from deterministic SHA-256 inputs; frozen: C and TS must both reproduce it.',
  walk,
  verify,
}, null, 1) + '\n');

/* SPDX-License-Identifier: MIT */
/*
 * mcg hash chains: the reference construction and verifier.
 *
 * v[0] is the vendor's secret seed; for 1 <= i <= n
 *     v[i] = SHA-256(chain_id[16] || be32(i) || v[i-1])      (52 bytes, one block)
 * The anchor v[n] is public (in the signed boot token). Tokens are spent in
 * reverse order v[n-1], v[n-2], ..., v[0]. See docs/tokens.md.
 *
 * Fixed-length buffers, no allocation, constant-time comparison: this code is
 * meant to be small enough to live in a hypervisor or the in-guest helper.
 */
#ifndef MCG_CHAIN_H
#define MCG_CHAIN_H

#include <stdint.h>

#include "mcg/sha256.h"

#define MCG_CHAIN_ID_BYTES 16
#define MCG_CHAIN_VALUE_BYTES 32
#define MCG_CHAIN_STEP_INPUT_BYTES (MCG_CHAIN_ID_BYTES + 4 + MCG_CHAIN_VALUE_BYTES)
/* A node accepts a value at most this many steps below the last accepted one,
 * so a few lost datagrams do not strand a customer, while one verification
 * stays bounded (MAX_SKIP hashes) against floods. */
#define MCG_CHAIN_MAX_SKIP 16
/* Chains are 2^k long, 1 <= k <= 32 (the traversal is binary pebbling). */
#define MCG_CHAIN_MAX_LOG2_LENGTH 32

enum mcg_chain_verdict {
	MCG_CHAIN_OK = 0,
	MCG_CHAIN_REPLAY = 1,    /* index at or above the last accepted one */
	MCG_CHAIN_SKIP_TOO_FAR = 2,
	MCG_CHAIN_MISMATCH = 3,  /* does not hash to the last accepted value */
};

/* One step: out = v[index] computed from prev = v[index - 1]. out may alias prev. */
void mcg_chain_step(const uint8_t chain_id[MCG_CHAIN_ID_BYTES], uint32_t index,
		    const uint8_t prev[MCG_CHAIN_VALUE_BYTES],
		    uint8_t out[MCG_CHAIN_VALUE_BYTES]);

/* Walk from v[from] (in value) to v[from + steps] (written to out). */
void mcg_chain_walk(const uint8_t chain_id[MCG_CHAIN_ID_BYTES], uint64_t from,
		    uint64_t steps, const uint8_t value[MCG_CHAIN_VALUE_BYTES],
		    uint8_t out[MCG_CHAIN_VALUE_BYTES]);

/*
 * mcg_chain_verify - Decide whether a presented token may be accepted.
 * @last_index/@last_value: the last accepted position (the anchor at first).
 * @index/@value: the token presented.
 *
 * Accepts iff last_index - MCG_CHAIN_MAX_SKIP <= index < last_index and
 * walking value forward to last_index gives last_value. Costs at most
 * MCG_CHAIN_MAX_SKIP hashes; the comparison does not leak where it differs.
 */
enum mcg_chain_verdict mcg_chain_verify(const uint8_t chain_id[MCG_CHAIN_ID_BYTES],
					uint64_t last_index,
					const uint8_t last_value[MCG_CHAIN_VALUE_BYTES],
					uint64_t index,
					const uint8_t value[MCG_CHAIN_VALUE_BYTES]);

/* 1 if equal, 0 if not; time depends only on len. */
int mcg_equal_ct(const uint8_t *a, const uint8_t *b, unsigned int len);

#endif

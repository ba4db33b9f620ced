// SPDX-License-Identifier: MIT
#include <string.h>

#include "mcg/chain.h"

_Static_assert(MCG_CHAIN_STEP_INPUT_BYTES <= 55,
	       "a chain step must fit one SHA-256 block");

void mcg_chain_step(const uint8_t chain_id[MCG_CHAIN_ID_BYTES], uint32_t index,
		    const uint8_t prev[MCG_CHAIN_VALUE_BYTES],
		    uint8_t out[MCG_CHAIN_VALUE_BYTES])
{
	uint8_t input[MCG_CHAIN_STEP_INPUT_BYTES];

	memcpy(input, chain_id, MCG_CHAIN_ID_BYTES);
	input[16] = index >> 24;
	input[17] = index >> 16;
	input[18] = index >> 8;
	input[19] = index;
	memcpy(input + 20, prev, MCG_CHAIN_VALUE_BYTES);
	mcg_sha256(input, sizeof(input), out);
}

void mcg_chain_walk(const uint8_t chain_id[MCG_CHAIN_ID_BYTES], uint64_t from,
		    uint64_t steps, const uint8_t value[MCG_CHAIN_VALUE_BYTES],
		    uint8_t out[MCG_CHAIN_VALUE_BYTES])
{
	uint64_t i;

	memmove(out, value, MCG_CHAIN_VALUE_BYTES);
	for (i = 1; i <= steps; i++)
		mcg_chain_step(chain_id, (uint32_t)(from + i), out, out);
}

int mcg_equal_ct(const uint8_t *a, const uint8_t *b, unsigned int len)
{
	volatile uint8_t diff = 0;
	unsigned int i;

	for (i = 0; i < len; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

enum mcg_chain_verdict mcg_chain_verify(const uint8_t chain_id[MCG_CHAIN_ID_BYTES],
					uint64_t last_index,
					const uint8_t last_value[MCG_CHAIN_VALUE_BYTES],
					uint64_t index,
					const uint8_t value[MCG_CHAIN_VALUE_BYTES])
{
	uint8_t walked[MCG_CHAIN_VALUE_BYTES];
	int equal;

	if (index >= last_index)
		return MCG_CHAIN_REPLAY;
	if (last_index - index > MCG_CHAIN_MAX_SKIP)
		return MCG_CHAIN_SKIP_TOO_FAR;
	mcg_chain_walk(chain_id, index, last_index - index, value, walked);
	equal = mcg_equal_ct(walked, last_value, MCG_CHAIN_VALUE_BYTES);
	memset(walked, 0, sizeof(walked));
	return equal ? MCG_CHAIN_OK : MCG_CHAIN_MISMATCH;
}

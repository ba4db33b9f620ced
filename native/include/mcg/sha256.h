/* SPDX-License-Identifier: MIT */
/*
 * SHA-256 (FIPS 180-4) with no allocation and no libc beyond memcpy/memset,
 * so the same file can be linked into the node agent, the in-guest helper or a
 * hypervisor.
 */
#ifndef MCG_SHA256_H
#define MCG_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define MCG_SHA256_BYTES 32
#define MCG_SHA256_BLOCK_BYTES 64

struct mcg_sha256 {
	uint32_t state[8];
	uint64_t total_bytes;
	uint8_t block[MCG_SHA256_BLOCK_BYTES];
	size_t block_used;
};

void mcg_sha256_init(struct mcg_sha256 *ctx);
void mcg_sha256_update(struct mcg_sha256 *ctx, const void *data, size_t len);
void mcg_sha256_final(struct mcg_sha256 *ctx, uint8_t out[MCG_SHA256_BYTES]);
void mcg_sha256(const void *data, size_t len, uint8_t out[MCG_SHA256_BYTES]);

#endif

/* SPDX-License-Identifier: MIT */
/* XXH64 (xxHash, 64-bit): the frame checksum of the migration stream. */
#ifndef MCG_XXH64_H
#define MCG_XXH64_H

#include <stddef.h>
#include <stdint.h>

uint64_t mcg_xxh64(const void *data, size_t len, uint64_t seed);

#endif

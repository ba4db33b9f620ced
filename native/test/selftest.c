// SPDX-License-Identifier: MIT
/*
 * Known-answer test for the C core. Built-in SHA-256 vectors (FIPS 180-4),
 * then one vector per stdin line, in the form the TS test writes from
 * test/vectors/chain.json:
 *   walk   CHAIN_ID FROM STEPS VALUE EXPECTED_VALUE
 *   verify CHAIN_ID LAST_INDEX LAST_VALUE INDEX VALUE EXPECTED_VERDICT
 * Prints "N passed, M failed" and exits 1 if anything failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcg/chain.h"
#include "mcg/sha256.h"
#include "mcg/xxh64.h"

static int passed, failed;

static int unhex(const char *hex, uint8_t *out, size_t len)
{
	size_t i;

	if (strlen(hex) != 2 * len)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned int b;

		if (sscanf(hex + 2 * i, "%2x", &b) != 1)
			return -1;
		out[i] = (uint8_t)b;
	}
	return 0;
}

static void check(int ok, const char *what)
{
	if (ok) {
		passed++;
	} else {
		failed++;
		fprintf(stderr, "FAIL: %s\n", what);
	}
}

static void sha256_kat(const char *msg, const char *expected_hex)
{
	uint8_t got[32], want[32];

	unhex(expected_hex, want, 32);
	mcg_sha256(msg, strlen(msg), got);
	check(memcmp(got, want, 32) == 0, msg);
}

/* Known answers from an independent XXH64 implementation (npm xxhashjs 0.2.2). */
static void xxh64_kat(const char *msg, size_t len, uint64_t seed, uint64_t expected)
{
	check(mcg_xxh64(msg, len, seed) == expected, msg);
}

int main(void)
{
	static const char x100[] = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
	char line[1024];

	xxh64_kat("", 0, 0, 0xef46db3751d8e999ULL);
	xxh64_kat("", 0, 7, 0x95f0626f6f0a4409ULL);
	xxh64_kat("a", 1, 0, 0xd24ec4f1a98c6e5bULL);
	xxh64_kat("abc", 3, 7, 0x9e755206156676d7ULL);
	xxh64_kat("Nobody inspects the spammish repetition", 39, 0, 0xfbcea83c8a378bf1ULL);
	xxh64_kat(x100, 100, 0, 0x92f0de5a88a3c094ULL);
	xxh64_kat(x100, 100, 7, 0xae5ad321e4fe6127ULL);

	sha256_kat("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	sha256_kat("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	sha256_kat("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		   "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

	while (fgets(line, sizeof(line), stdin)) {
		char op[16], id_hex[64], a_hex[80], b_hex[80];
		unsigned long long x, y;
		uint8_t id[16], a[32], b[32], out[32];
		int expected;

		if (sscanf(line, "walk %63s %llu %llu %79s %79s", id_hex, &x, &y, a_hex, b_hex) == 5) {
			if (unhex(id_hex, id, 16) || unhex(a_hex, a, 32) || unhex(b_hex, b, 32)) {
				check(0, line);
				continue;
			}
			mcg_chain_walk(id, x, y, a, out);
			check(memcmp(out, b, 32) == 0, line);
		} else if (sscanf(line, "verify %63s %llu %79s %llu %79s %d", id_hex, &x, a_hex,
				  &y, b_hex, &expected) == 6) {
			if (unhex(id_hex, id, 16) || unhex(a_hex, a, 32) || unhex(b_hex, b, 32)) {
				check(0, line);
				continue;
			}
			check((int)mcg_chain_verify(id, x, a, y, b) == expected, line);
		} else if (sscanf(line, "%15s", op) == 1) {
			check(0, line);
		}
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

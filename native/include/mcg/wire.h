/* SPDX-License-Identifier: MIT */
/*
 * mcg token wire formats: the signed boot token and the UDP admission
 * datagrams. This header is the single source of truth; node-agent/wire.ts and
 * tokens/boot-token.ts mirror it byte for byte and a test compares the sizes and
 * offsets exported by the addon with theirs. All integers are big-endian.
 * See docs/protocol.md and docs/tokens.md.
 */
#ifndef MCG_WIRE_H
#define MCG_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "mcg/chain.h"

#ifdef __cplusplus
#define MCG_STATIC_ASSERT static_assert
#else
#define MCG_STATIC_ASSERT _Static_assert
#endif

#define MCG_BOOT_TOKEN_MAGIC "MCGB"
#define MCG_MSG_MAGIC "MCGP"
#define MCG_WIRE_VERSION 1
#define MCG_NAME_BYTES 32	/* customer and node ids: UTF-8, zero padded */
#define MCG_VENDOR_KEY_ID_BYTES 8	/* first bytes of SHA-256(raw Ed25519 public key) */
#define MCG_ED25519_SIGNATURE_BYTES 64

/* Signed by the vendor over every byte before @signature. */
struct mcg_boot_token {
	uint8_t magic[4];
	uint8_t version;
	uint8_t log2_length;	/* chain length n = 2^log2_length */
	uint16_t reserved;	/* must be 0 */
	uint8_t chain_id[MCG_CHAIN_ID_BYTES];
	uint8_t customer[MCG_NAME_BYTES];
	uint8_t node_id[MCG_NAME_BYTES];
	uint64_t mib_seconds_per_token;
	uint64_t expires_unix;	/* seconds; a node refuses the chain after this */
	uint8_t vendor_key_id[MCG_VENDOR_KEY_ID_BYTES];
	uint8_t anchor[MCG_CHAIN_VALUE_BYTES];	/* v[n] */
	uint8_t signature[MCG_ED25519_SIGNATURE_BYTES];
} __attribute__((packed));

#define MCG_BOOT_TOKEN_BYTES 208
#define MCG_BOOT_TOKEN_SIGNED_BYTES (MCG_BOOT_TOKEN_BYTES - MCG_ED25519_SIGNATURE_BYTES)

enum mcg_msg_type {
	MCG_MSG_BOOT = 1,
	MCG_MSG_PAY = 2,
	MCG_MSG_STATUS = 3,
	MCG_MSG_OK = 0x81,
	MCG_MSG_ERR = 0x82,
};

struct mcg_msg_header {
	uint8_t magic[4];
	uint8_t version;
	uint8_t type;
	uint16_t reserved;	/* must be 0 */
	uint32_t request_id;	/* chosen by the client, echoed in the reply */
} __attribute__((packed));

struct mcg_payment {
	uint32_t index;
	uint8_t value[MCG_CHAIN_VALUE_BYTES];
} __attribute__((packed));

/* First datagram of a customer: the token and its first payment together. */
struct mcg_msg_boot {
	struct mcg_msg_header header;
	struct mcg_boot_token token;
	struct mcg_payment payment;
} __attribute__((packed));

struct mcg_msg_pay {
	struct mcg_msg_header header;
	uint8_t chain_id[MCG_CHAIN_ID_BYTES];
	struct mcg_payment payment;
} __attribute__((packed));

/* Padded to the size of the largest reply: a reply is never larger than its
 * request, so the agent cannot be used to amplify a spoofed flood. */
struct mcg_msg_status {
	struct mcg_msg_header header;
	uint8_t chain_id[MCG_CHAIN_ID_BYTES];
	uint8_t padding[36];	/* must be 0 */
} __attribute__((packed));

struct mcg_msg_ok {
	struct mcg_msg_header header;
	uint8_t chain_id[MCG_CHAIN_ID_BYTES];
	uint32_t last_index;	/* last accepted index: tokens left to spend */
	uint32_t reserved;
	uint64_t granted_mib_seconds;	/* total allowance bought on this chain */
	uint64_t expires_unix;
} __attribute__((packed));

enum mcg_err_code {
	MCG_ERR_TRUNCATED = 1,
	MCG_ERR_OVERSIZED = 2,
	MCG_ERR_BAD_MAGIC = 3,
	MCG_ERR_BAD_VERSION = 4,
	MCG_ERR_BAD_TYPE = 5,
	MCG_ERR_MALFORMED = 6,	/* reserved/padding not zero, length out of range */
	MCG_ERR_WRONG_NODE = 7,
	MCG_ERR_UNKNOWN_VENDOR_KEY = 8,
	MCG_ERR_BAD_SIGNATURE = 9,
	MCG_ERR_EXPIRED = 10,
	MCG_ERR_UNKNOWN_CHAIN = 11,
	MCG_ERR_REPLAY = 12,
	MCG_ERR_SKIP_TOO_FAR = 13,
	MCG_ERR_MISMATCH = 14,	/* value is not the chain's next (counterfeit/other chain) */
	MCG_ERR_RATE_LIMITED = 15,
	MCG_ERR_INTERNAL = 16,	/* ledger write failed; nothing was accepted */
};

struct mcg_msg_err {
	struct mcg_msg_header header;
	uint16_t code;
	uint16_t reserved;
	uint8_t chain_id[MCG_CHAIN_ID_BYTES];	/* zero when not known */
} __attribute__((packed));

#define MCG_MSG_HEADER_BYTES 12
#define MCG_MSG_BOOT_BYTES 256
#define MCG_MSG_PAY_BYTES 64
#define MCG_MSG_STATUS_BYTES 64
#define MCG_MSG_OK_BYTES 52
#define MCG_MSG_ERR_BYTES 32
/* Anything longer is refused before parsing. */
#define MCG_MAX_DATAGRAM_BYTES MCG_MSG_BOOT_BYTES

MCG_STATIC_ASSERT(sizeof(struct mcg_boot_token) == MCG_BOOT_TOKEN_BYTES, "boot token size");
MCG_STATIC_ASSERT(offsetof(struct mcg_boot_token, signature) == MCG_BOOT_TOKEN_SIGNED_BYTES,
	       "signature is last");
MCG_STATIC_ASSERT(sizeof(struct mcg_msg_header) == MCG_MSG_HEADER_BYTES, "header size");
MCG_STATIC_ASSERT(sizeof(struct mcg_msg_boot) == MCG_MSG_BOOT_BYTES, "BOOT size");
MCG_STATIC_ASSERT(sizeof(struct mcg_msg_pay) == MCG_MSG_PAY_BYTES, "PAY size");
MCG_STATIC_ASSERT(sizeof(struct mcg_msg_status) == MCG_MSG_STATUS_BYTES, "STATUS size");
MCG_STATIC_ASSERT(sizeof(struct mcg_msg_ok) == MCG_MSG_OK_BYTES, "OK size");
MCG_STATIC_ASSERT(sizeof(struct mcg_msg_err) == MCG_MSG_ERR_BYTES, "ERR size");
MCG_STATIC_ASSERT(MCG_MSG_OK_BYTES <= MCG_MSG_PAY_BYTES && MCG_MSG_OK_BYTES <= MCG_MSG_STATUS_BYTES,
	       "a reply is never larger than its request");

#endif

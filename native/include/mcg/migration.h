/* SPDX-License-Identifier: MIT */
/*
 * The mcg self-migration stream (guest to guest over TCP). Single source of
 * truth: the in-guest helper writes and reads it; docs/self-migration.md
 * describes it. Integers are little-endian (both ends are the same x86 guest).
 *
 * Every frame is a 24-byte header and a payload whose XXH64 (seeded with the
 * frame's sequence number, so a dropped, repeated or reordered frame fails too)
 * is in the header. The receiver checks magic, version, type, length bound,
 * sequence and checksum before it uses a payload.
 */
#ifndef MCG_MIGRATION_H
#define MCG_MIGRATION_H

#include <stdint.h>

#ifdef __cplusplus
#define MCG_MIG_STATIC_ASSERT static_assert
#else
#define MCG_MIG_STATIC_ASSERT _Static_assert
#endif

#define MCG_MIG_MAGIC 0x4d47434dU	/* "MCGM" little-endian */
#define MCG_MIG_VERSION 2
#define MCG_MIG_PAGE_BYTES 4096
/* Bounds one frame so a corrupt length cannot make the receiver allocate or wait for more. */
#define MCG_MIG_MAX_PAYLOAD (1024 * 1024)
/* Pre-copy PAGES payload: records of (u64 pfn, page). */
#define MCG_MIG_PAGE_RECORD_BYTES (8 + MCG_MIG_PAGE_BYTES)
#define MCG_MIG_MAX_PAGES_PER_FRAME (MCG_MIG_MAX_PAYLOAD / MCG_MIG_PAGE_RECORD_BYTES)

enum mcg_mig_frame_type {
	MCG_MIG_HELLO = 1,	/* struct mcg_mig_hello: the source's, then the receiver's if it takes the system */
	MCG_MIG_PAGES = 2,	/* pre-copy pages: records of (pfn, data) */
	MCG_MIG_ROUND_END = 3,	/* struct mcg_mig_round */
	MCG_MIG_IMAGE = 4,	/* a chunk of the hibernation image stream */
	MCG_MIG_END = 5,	/* struct mcg_mig_end: the image is complete */
	MCG_MIG_ACK = 6,	/* receiver -> source: image verified and loaded; payload: the
			 * receiver's stats (JSON), which the source prints */
	MCG_MIG_ABORT = 7,	/* either way: give up, the source keeps running */
	MCG_MIG_FINAL = 8,	/* source -> receiver, empty: the final round begins */
};

struct mcg_mig_frame {
	uint32_t magic;
	uint8_t version;
	uint8_t type;
	uint16_t reserved;	/* 0 */
	uint32_t length;	/* payload bytes */
	uint32_t seq;		/* frames are numbered from 0, per direction */
	uint64_t checksum;	/* XXH64(payload, seed = seq) */
} __attribute__((packed));

#define MCG_MIG_FRAME_BYTES 24

enum mcg_mig_mode {
	MCG_MIG_MODE_STOPCOPY = 1,
	MCG_MIG_MODE_PRECOPY = 2,
};

struct mcg_mig_hello {
	uint32_t mode;		/* enum mcg_mig_mode */
	uint32_t page_bytes;	/* MCG_MIG_PAGE_BYTES */
	uint64_t ram_pages;	/* receiver must have the same RAM size */
	char kernel_release[64];
} __attribute__((packed));

struct mcg_mig_round {
	uint32_t round;
	uint32_t reserved;
	uint64_t pages;
	uint64_t bytes;
} __attribute__((packed));

struct mcg_mig_end {
	uint64_t image_bytes;	/* bytes of IMAGE payload sent */
	uint64_t frames;	/* frames sent before this one */
} __attribute__((packed));

MCG_MIG_STATIC_ASSERT(sizeof(struct mcg_mig_frame) == MCG_MIG_FRAME_BYTES, "frame header size");
MCG_MIG_STATIC_ASSERT(sizeof(struct mcg_mig_hello) == 80, "hello size");
MCG_MIG_STATIC_ASSERT(sizeof(struct mcg_mig_round) == 24, "round size");
MCG_MIG_STATIC_ASSERT(sizeof(struct mcg_mig_end) == 16, "end size");

#endif

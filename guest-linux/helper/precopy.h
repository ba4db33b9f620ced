/* SPDX-License-Identifier: MIT */
/* Pre-copy rounds of a self-migration, over the snapshot device (kernel patch 0001). */
#ifndef MCG_PRECOPY_H
#define MCG_PRECOPY_H

#include <stddef.h>
#include <stdint.h>

/* Round policy (docs/self-migration.md), after Xen's: */
#define PRECOPY_MAX_ROUNDS 30		/* a round limit */
#define PRECOPY_DONE_PAGES 256		/* a small dirty set: 1 MiB */
#define PRECOPY_MAX_SENT_FACTOR 3	/* a cap on total bytes: 3x the pages in use */
/* Snapshot buffer for the final round: twice the last round's pages plus room
 * for what freezing and suspending devices dirty (deltas ran 220-320 pages
 * above the last round). Every page of it is in the image, allocated, and the
 * target frees it while it stands still: 4096 took 1.6-2.7 ms there, 1024
 * 0.6-1.2 ms. A delta that does not fit is retried with twice the buffer. */
#define PRECOPY_BUFFER_MARGIN_PAGES 1024

struct precopy_round_stat {
	uint64_t pages, bytes;
	double seconds;
};

struct precopy_stats {
	unsigned int nr_rounds;
	struct precopy_round_stat round[PRECOPY_MAX_ROUNDS + 4];
	uint64_t page_bytes;	/* page payload sent in rounds */
	uint64_t in_use_pages;	/* in-use pages the first round looked at */
	const char *stop_reason;
};

typedef int (*precopy_send_fn)(void *link, int type, const void *payload, size_t len);

/* Runs rounds until the policy stops them (extra_only: exactly one more round). */
int precopy_rounds(int snap, void *link, precopy_send_fn send, struct precopy_stats *st,
		   int extra_only, const char **why);
/*
 * Arms the delta snapshot (allocates its buffer; call before SNAPSHOT_FREEZE);
 * attempt n gets 2^n times the base buffer.
 */
int precopy_arm_final(int snap, const struct precopy_stats *st, unsigned int attempt);
/* Test hook: the first attempt's buffer in pages, to force a retry (0: off). */
extern unsigned long precopy_test_first_buffer_pages;
int precopy_receiver_start(int snap);
/*
 * A whole round arrived: the kernel moves its reserve out of image frames and
 * places the pages stashed for frames it freed meanwhile.
 */
int precopy_receiver_round_done(int snap);
int precopy_load(int snap, void *records, size_t nr);

#endif

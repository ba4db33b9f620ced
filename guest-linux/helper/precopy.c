// SPDX-License-Identifier: MIT
#include <errno.h>
#include <linux/suspend_ioctls.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

#include "mcg/migration.h"
#include "precopy.h"

#ifndef SNAPSHOT_PRECOPY_START
#error "linux/suspend_ioctls.h lacks the pre-copy ioctls: build against the patched kernel headers"
#endif

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

#define RECORDS_BYTES (MCG_MIG_MAX_PAGES_PER_FRAME * MCG_MIG_PAGE_RECORD_BYTES)
static void *records;

/*
 * The record buffer is rewritten all through a round, so its pages would be
 * sent again every round and in the final delta (a third of each later round,
 * measured). What it held is of no use once sent: a fresh mapping in its place
 * at the end of each round frees its pages, which the next round and the
 * snapshot skip.
 * (mmap, not madvise: small kernels have no madvise.)
 */
static int renew_records(void)
{
	void *at = mmap(records, RECORDS_BYTES, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | (records ? MAP_FIXED : 0), -1, 0);

	if (at == MAP_FAILED) {
		records = NULL;	/* a failed MAP_FIXED may have unmapped it */
		return -1;
	}
	records = at;
	return 0;
}

/* One round: every in-use page whose contents changed since it was last sent. */
static int one_round(int snap, void *link, precopy_send_fn send, struct precopy_stats *st,
		     const char **why)
{
	struct snapshot_precopy_pages req = {
		.max_pages = MCG_MIG_MAX_PAGES_PER_FRAME,
	};
	struct precopy_round_stat *r = &st->round[st->nr_rounds];
	struct mcg_mig_round end = { .round = st->nr_rounds };
	double t0 = now_s();

	if (!records && renew_records()) {
		*why = "mapping the record buffer failed";
		return -1;
	}
	req.buf = (uintptr_t)records;
	do {
		if (ioctl(snap, SNAPSHOT_PRECOPY_READ, &req) < 0) {
			*why = "SNAPSHOT_PRECOPY_READ failed";
			return -1;
		}
		if (req.nr_pages && send(link, MCG_MIG_PAGES, records, req.nr_pages * MCG_MIG_PAGE_RECORD_BYTES)) {
			*why = "sending pages failed";
			return -1;
		}
		r->pages += req.nr_pages;
	} while (req.cursor != SNAPSHOT_PRECOPY_ROUND_DONE);
	r->bytes = r->pages * MCG_MIG_PAGE_BYTES;
	end.pages = r->pages;
	end.bytes = r->bytes;
	if (send(link, MCG_MIG_ROUND_END, &end, sizeof(end))) {
		*why = "sending ROUND_END failed";
		return -1;
	}
	renew_records();	/* sent: drop its pages (on failure the next round maps anew) */
	r->seconds = now_s() - t0;
	if (st->nr_rounds == 0)
		st->in_use_pages = req.scanned;
	st->page_bytes += r->bytes;
	printf("MCG-EVENT round %u pages=%llu seconds=%.3f\n", st->nr_rounds,
	       (unsigned long long)r->pages, r->seconds);
	fflush(stdout);
	st->nr_rounds++;
	return 0;
}

int precopy_rounds(int snap, void *link, precopy_send_fn send, struct precopy_stats *st,
		   int extra_only, const char **why)
{
	if (!st->nr_rounds && ioctl(snap, SNAPSHOT_PRECOPY_START) < 0) {
		*why = "SNAPSHOT_PRECOPY_START failed (kernel without pre-copy support?)";
		return -1;
	}
	for (;;) {
		const struct precopy_round_stat *r, *prev;

		if (st->nr_rounds >= PRECOPY_MAX_ROUNDS + 3) {
			*why = "no round left for another attempt";
			return -1;
		}
		if (one_round(snap, link, send, st, why))
			return -1;
		if (extra_only)
			return 0;
		r = &st->round[st->nr_rounds - 1];
		prev = st->nr_rounds > 1 ? r - 1 : NULL;
		if (r->pages < PRECOPY_DONE_PAGES) {
			st->stop_reason = "small dirty set";
		} else if (prev && st->nr_rounds > 2 && r->pages >= prev->pages) {
			st->stop_reason = "no progress";
		} else if (st->nr_rounds >= PRECOPY_MAX_ROUNDS) {
			st->stop_reason = "round limit";
		} else if (st->page_bytes / MCG_MIG_PAGE_BYTES > PRECOPY_MAX_SENT_FACTOR * st->in_use_pages) {
			st->stop_reason = "byte cap";
		} else {
			continue;
		}
		return 0;
	}
}

unsigned long precopy_test_first_buffer_pages;

int precopy_arm_final(int snap, const struct precopy_stats *st, unsigned int attempt)
{
	uint64_t last = st->nr_rounds ? st->round[st->nr_rounds - 1].pages : st->in_use_pages;
	unsigned long pages = (2 * last + PRECOPY_BUFFER_MARGIN_PAGES) << attempt;

	if (attempt == 0 && precopy_test_first_buffer_pages)
		pages = precopy_test_first_buffer_pages;

	return ioctl(snap, SNAPSHOT_PRECOPY_ARM, pages);
}

int precopy_receiver_start(int snap)
{
	return ioctl(snap, SNAPSHOT_PRECOPY_LOAD_START);
}

int precopy_receiver_round_done(int snap)
{
	return ioctl(snap, SNAPSHOT_PRECOPY_LOAD_RESERVE);
}

int precopy_load(int snap, void *records, size_t nr)
{
	struct snapshot_precopy_pages req = { .buf = (uintptr_t)records, .nr_pages = nr };

	return ioctl(snap, SNAPSHOT_PRECOPY_LOAD, &req);
}

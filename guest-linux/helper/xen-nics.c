// SPDX-License-Identifier: MIT
/*
 * A receiver domain's own netfronts are connected to the backends that the
 * restored image must use. Before the restore, walk each through the xenbus
 * states by hand, over the kernel's xenstore device: Closing (this kernel's
 * netfront answers by closing, the backend unmaps its rings), then
 * Initialising (the backend prepares for a reconnect and waits in InitWait).
 * The restored netfront then connects as after Xen's own restore.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "xen-nics.h"

/* xen/interface/io/xs_wire.h */
enum { XS_DIRECTORY = 1, XS_READ = 2, XS_WRITE = 11, XS_ERROR = 16 };
enum { XB_INITIALISING = 1, XB_INITWAIT = 2, XB_CLOSING = 5, XB_CLOSED = 6 };

struct xsd_sockmsg {
	uint32_t type, req_id, tx_id, len;
};

#define XS_PAYLOAD_MAX 4096

/* One request; the reply's payload (NUL-terminated) lands in out. */
static int xs_request(int fd, uint32_t type, const char *a, const char *b, char *out)
{
	char buf[sizeof(struct xsd_sockmsg) + XS_PAYLOAD_MAX];
	struct xsd_sockmsg *m = (struct xsd_sockmsg *)buf;
	size_t la = strlen(a) + 1, lb = b ? strlen(b) : 0;
	ssize_t n;

	if (la + lb > XS_PAYLOAD_MAX)
		return -1;
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->len = la + lb;
	memcpy(buf + sizeof(*m), a, la);
	if (b)
		memcpy(buf + sizeof(*m) + la, b, lb);
	if (write(fd, buf, sizeof(*m) + m->len) != (ssize_t)(sizeof(*m) + m->len))
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < (ssize_t)sizeof(*m) || m->type == XS_ERROR)
		return -1;
	buf[n] = 0;
	if (out)
		memcpy(out, buf + sizeof(*m), n - sizeof(*m) + 1);
	return 0;
}

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Waits until the node at path holds one of the states a or b. */
static int wait_state(int fd, const char *path, int a, int b, double deadline)
{
	char v[XS_PAYLOAD_MAX + 1];

	while (now_ms() < deadline) {
		if (xs_request(fd, XS_READ, path, NULL, v) == 0 && (atoi(v) == a || atoi(v) == b))
			return 0;
		usleep(2000);
	}
	return -1;
}

static int read_state(int fd, const char *path)
{
	char v[XS_PAYLOAD_MAX + 1];

	return xs_request(fd, XS_READ, path, NULL, v) ? -1 : atoi(v);
}

/* Whether the interface with this MAC address is up (the receiver uses it). */
static int nic_is_up(const char *mac)
{
	char path[300], buf[64];
	DIR *d = opendir("/sys/class/net");
	struct dirent *e;
	int up = 0;
	FILE *f;

	while (d && (e = readdir(d))) {
		snprintf(path, sizeof(path), "/sys/class/net/%.200s/address", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f) && !strncasecmp(buf, mac, strlen(mac))) {
			FILE *g;

			snprintf(path, sizeof(path), "/sys/class/net/%.200s/flags", e->d_name);
			g = fopen(path, "r");
			if (g && fgets(buf, sizeof(buf), g))
				up = (strtoul(buf, NULL, 16) & IFF_UP) != 0;
			if (g)
				fclose(g);
		}
		fclose(f);
	}
	if (d)
		closedir(d);
	return up;
}

static int hand_over(int fd, const char *vif, int which, double deadline)
{
	char fe[64], be[XS_PAYLOAD_MAX + 1], be_state[256], mac[64], st[4];

	/* Names and backend paths are short ("0", "/local/domain/0/backend/vif/7/0"). */
	snprintf(be_state, sizeof(be_state), "device/vif/%.16s/backend", vif);
	if (xs_request(fd, XS_READ, be_state, NULL, be))
		return -1;
	snprintf(be_state, sizeof(be_state), "%.200s/state", be);
	snprintf(fe, sizeof(fe), "device/vif/%.16s/mac", vif);
	if (which == XEN_NICS_IDLE && (xs_request(fd, XS_READ, fe, NULL, mac) || nic_is_up(mac)))
		return 0;
	snprintf(fe, sizeof(fe), "device/vif/%.16s/state", vif);
	if (read_state(fd, fe) == XB_INITIALISING && read_state(fd, be_state) == XB_INITWAIT)
		return 0;	/* handed over already */
	snprintf(st, sizeof(st), "%d", XB_CLOSING);
	if (xs_request(fd, XS_WRITE, fe, st, NULL) || wait_state(fd, be_state, XB_CLOSED, XB_CLOSED, deadline))
		return -1;
	snprintf(st, sizeof(st), "%d", XB_INITIALISING);
	if (xs_request(fd, XS_WRITE, fe, st, NULL) || wait_state(fd, be_state, XB_INITWAIT, XB_INITWAIT, deadline))
		return -1;
	return 0;
}

int xen_nics_hand_over(int which, int timeout_ms)
{
	char list[XS_PAYLOAD_MAX + 1], *vif;
	double deadline = now_ms() + timeout_ms;
	int fd = open("/dev/xen/xenbus", O_RDWR), n = 0;

	if (fd < 0)
		return 0;
	/* The reply is a list of NUL-separated names. */
	memset(list, 0, sizeof(list));
	if (xs_request(fd, XS_DIRECTORY, "device/vif", NULL, list)) {
		close(fd);
		return 0;
	}
	if (which == XEN_NICS_ALL && *list)
		printf("MCG-EVENT xen-nics handing over\n");
	for (vif = list; *vif; vif += strlen(vif) + 1, n++) {
		if (hand_over(fd, vif, which, deadline)) {
			printf("MCG-EVENT xen-nic-handover-failed vif=%s errno=\"%s\"\n", vif, strerror(errno));
			close(fd);
			return -1;
		}
	}
	close(fd);
	return n;
}

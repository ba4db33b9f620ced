// SPDX-License-Identifier: MIT
/*
 * mcg-guest: the in-guest helper of the mcg guest (static, runs from the
 * initramfs). Roles:
 *   workload            memory writer + counter services + control port
 *   migrate MODE H:P    move this running system to a receiver (MODE: stopcopy|precopy)
 *   receive PORT        receive a migrating system and become it
 *   rehearse thaw|restore  stop and resume once as a migration will (at boot)
 * Reports on stdout (the serial console): "MCG-EVENT name ..." and
 * "MCG-STATS {json}" lines that the host harness parses.
 * Dies loudly with strerror(errno) on anything unexpected.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/reboot.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <linux/suspend_ioctls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <termios.h>
#include <unistd.h>

#include "mcg/migration.h"
#include "mcg/xxh64.h"
#include "precopy.h"
#include "xen-nics.h"

#define SERVICE_UDP_PORT 7000	/* counter: one number per request (the probe) */
#define SERVICE_TCP_PORT 7001	/* counter stream: "N\n" every 10 ms on a kept connection */
#define VERIFY_UDP_PORT 7002	/* workload: recompute the whole buffer's checksum */
#define CONTROL_UDP_PORT 7009	/* "migrate MODE HOST:PORT" */
#define MAX_FINAL_ATTEMPTS 3	/* delta snapshots that may outgrow their buffer */
#define HANDOVER_HEAD_START_US 100000	/* the source idles while the target restores */

/* A silent peer is a dead peer after this many seconds (kernel command line: mcg_io_timeout). */
static int io_timeout_sec = 10;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* MemFree in KiB, or -1: the tests compare it before and after a migration. */
static long mem_free_kb(void)
{
	char line[128];
	long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemFree: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void die(const char *what)
{
	say("MCG-EVENT fatal %s: %s", what, strerror(errno));
	exit(1);
}

static unsigned long env_ulong(const char *name, unsigned long dflt)
{
	const char *v = getenv(name);

	return v && *v ? strtoul(v, NULL, 10) : dflt;
}

static int udp_socket(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("udp bind");
	return fd;
}

/* ---------------------------------------------------------------- workload */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

/*
 * Writes random words of a buffer at a set rate and keeps a running sum of all
 * words; "verify" recomputes the sum over the whole buffer. After a migration
 * a match proves every page of the buffer arrived intact.
 */
static void run_memory_workload(void)
{
	unsigned long mib = env_ulong("mcg_wl_mib", 64);
	unsigned long rate = env_ulong("mcg_wl_rate", 2000);	/* words written per second */
	size_t words = mib * 1024 * 1024 / sizeof(uint64_t);
	uint64_t *buf = malloc(words * sizeof(uint64_t));
	uint64_t sum = 0, step = 0, rng = 0x9e3779b97f4a7c15ULL;
	int vfd = udp_socket(VERIFY_UDP_PORT);
	double start = now_s();
	size_t i;

	if (!buf)
		die("workload malloc");
	for (i = 0; i < words; i++) {
		buf[i] = mix64(i);
		sum += buf[i];
	}
	say("MCG-EVENT workload-ready mib=%lu rate=%lu", mib, rate);
	for (;;) {
		char req[64], reply[160];
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n;
		int k;

		for (k = 0; k < 100; k++) {
			size_t idx;
			uint64_t v;

			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			idx = rng % words;
			v = mix64(step + 0x1234567ULL);
			sum += v - buf[idx];
			buf[idx] = v;
			step++;
		}
		n = recvfrom(vfd, req, sizeof(req), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
		if (n > 0) {
			uint64_t check = 0;

			for (i = 0; i < words; i++)
				check += buf[i];
			snprintf(reply, sizeof(reply), "verify %s step=%llu sum=%llu check=%llu",
				 check == sum ? "ok" : "FAIL", (unsigned long long)step,
				 (unsigned long long)sum, (unsigned long long)check);
			sendto(vfd, reply, strlen(reply), 0, (struct sockaddr *)&from, fl);
		}
		/* Hold the rate: sleep until `step` writes are due. */
		if (rate) {
			double due = start + (double)step / rate;
			double wait = due - now_s();

			if (wait > 0)
				usleep((useconds_t)(wait * 1e6));
			else if (wait < -1)
				start -= wait + 1;	/* fell behind (e.g. frozen): do not burst */
		}
	}
}

/* Counter services and the control port, in one poll loop. */
static void run_services(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(SERVICE_TCP_PORT) };
	int ufd = udp_socket(SERVICE_UDP_PORT), cfd = udp_socket(CONTROL_UDP_PORT);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), tfd = -1, one = 1;
	uint64_t udp_counter = 0, tcp_counter = 0;
	double next_tick = now_s();

	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 4) < 0)
		die("tcp listen");
	signal(SIGCHLD, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	say("MCG-EVENT services-ready udp=%d tcp=%d control=%d", SERVICE_UDP_PORT,
	    SERVICE_TCP_PORT, CONTROL_UDP_PORT);
	for (;;) {
		struct pollfd p[4] = {
			{ .fd = ufd, .events = POLLIN }, { .fd = cfd, .events = POLLIN },
			{ .fd = lfd, .events = POLLIN }, { .fd = tfd, .events = POLLIN },
		};
		char buf[256];
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n;
		int ms = (int)((next_tick - now_s()) * 1000);

		poll(p, tfd >= 0 ? 4 : 3, ms > 0 ? ms : 0);
		if (p[0].revents & POLLIN) {
			n = recvfrom(ufd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
			if (n >= 8) {
				/* Reply: the request's 8-byte tag, then the counter. */
				memcpy(buf + 8, &udp_counter, 8);
				udp_counter++;
				sendto(ufd, buf, 16, 0, (struct sockaddr *)&from, fl);
			}
		}
		if (p[1].revents & POLLIN) {
			char mode[16], target[64];

			fl = sizeof(from);
			n = recvfrom(cfd, buf, sizeof(buf) - 1, 0, (struct sockaddr *)&from, &fl);
			buf[n > 0 ? n : 0] = 0;
			if (sscanf(buf, "migrate %15s %63s", mode, target) == 2) {
				pid_t pid = fork();

				if (pid == 0) {
					execl("/bin/mcg-guest", "mcg-guest", "migrate", mode, target, NULL);
					_exit(127);
				}
				sendto(cfd, "started", 7, 0, (struct sockaddr *)&from, fl);
			} else {
				sendto(cfd, "unknown", 7, 0, (struct sockaddr *)&from, fl);
			}
		}
		if (p[2].revents & POLLIN) {
			int nfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

			if (nfd >= 0) {
				if (tfd >= 0)
					close(tfd);
				tfd = nfd;
				setsockopt(tfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			}
		}
		if (tfd >= 0 && (p[3].revents & (POLLHUP | POLLERR | POLLIN))) {
			n = recv(tfd, buf, sizeof(buf), MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN)) {
				close(tfd);
				tfd = -1;
			}
		}
		if (now_s() >= next_tick) {
			next_tick += 0.010;
			if (next_tick < now_s())
				next_tick = now_s() + 0.010;
			if (tfd >= 0) {
				int len = snprintf(buf, sizeof(buf), "%llu\n", (unsigned long long)tcp_counter);

				if (send(tfd, buf, len, MSG_DONTWAIT) == len)
					tcp_counter++;
			}
		}
	}
}

static int role_workload(void)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork");
	if (pid == 0)
		run_memory_workload();
	run_services();
	return 0;
}

/* ------------------------------------------------------------------ frames */

struct link {
	int fd;
	uint32_t send_seq, recv_seq;
	uint64_t bytes_sent, frames_sent;
};

static int write_all(int fd, const void *p, size_t len)
{
	const char *c = p;

	while (len) {
		ssize_t n = send(fd, c, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		c += n;
		len -= n;
	}
	return 0;
}

static int read_all(int fd, void *p, size_t len)
{
	char *c = p;

	while (len) {
		ssize_t n = recv(fd, c, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ECONNRESET;
			return -1;
		}
		c += n;
		len -= n;
	}
	return 0;
}

/*
 * Test hooks (kernel command line): damage frame N on the wire, after its
 * checksum was computed, to show that the receiver refuses the stream.
 */
static long corrupt_frame = -1, truncate_frame = -1;
/*
 * Test hook: hold for hold_ms once a frame is sent, after round 1 ("round1",
 * running) or after the first image frame ("image", stopped), so that a test
 * breaks the migration in that phase however slowly its host reacts (the final
 * round takes ~10 ms).
 */
static const char *hold_at;
static unsigned long hold_ms;

static void test_hold_after(int type, const void *payload)
{
	const char *at = type == MCG_MIG_IMAGE ? "image" :
		type == MCG_MIG_ROUND_END && ((const struct mcg_mig_round *)payload)->round == 1 ?
		"round1" : NULL;

	if (!hold_at || !at || strcmp(hold_at, at))
		return;
	hold_at = NULL;
	say("MCG-EVENT test-hook holding after %s ms=%lu", at, hold_ms);
	usleep(hold_ms * 1000);
}

static int send_frame(struct link *l, int type, const void *payload, size_t len)
{
	struct mcg_mig_frame h = {
		.magic = MCG_MIG_MAGIC, .version = MCG_MIG_VERSION, .type = type,
		.length = len, .seq = l->send_seq,
		.checksum = mcg_xxh64(payload, len, l->send_seq),
	};

	if (len && h.seq == corrupt_frame) {
		((char *)payload)[len / 2] ^= 0x01;
		say("MCG-EVENT test-hook corrupted frame %u", h.seq);
	}
	if (len && h.seq == truncate_frame) {
		say("MCG-EVENT test-hook truncated frame %u", h.seq);
		write_all(l->fd, &h, sizeof(h));
		write_all(l->fd, payload, len / 2);
		shutdown(l->fd, SHUT_WR);
		return -1;
	}
	if (write_all(l->fd, &h, sizeof(h)) || (len && write_all(l->fd, payload, len)))
		return -1;
	l->send_seq++;
	l->frames_sent++;
	l->bytes_sent += sizeof(h) + len;
	test_hold_after(type, payload);
	return 0;
}

static int link_send(void *l, int type, const void *payload, size_t len)
{
	return send_frame(l, type, payload, len);
}

/* Reads and checks one frame into buf (MCG_MIG_MAX_PAYLOAD bytes); returns its type or -1. */
static int recv_frame(struct link *l, void *buf, uint32_t *len, const char **why)
{
	struct mcg_mig_frame h;

	*why = "connection lost";
	if (read_all(l->fd, &h, sizeof(h)))
		return -1;
	*why = "bad frame header";
	if (h.magic != MCG_MIG_MAGIC || h.version != MCG_MIG_VERSION || h.reserved ||
	    h.length > MCG_MIG_MAX_PAYLOAD)
		return -1;
	*why = "frame out of sequence";
	if (h.seq != l->recv_seq)
		return -1;
	*why = "connection lost";
	if (read_all(l->fd, buf, h.length))
		return -1;
	*why = "frame checksum mismatch";
	if (mcg_xxh64(buf, h.length, h.seq) != h.checksum)
		return -1;
	l->recv_seq++;
	*len = h.length;
	return h.type;
}

/*
 * Waits until the peer's TCP has acknowledged everything sent on @fd, at most
 * @sec seconds: a sent frame is only queued. The receiver restores no sooner
 * than the source has its ACK, or it might run the image beside a source that
 * never learnt of the ACK and went on; nor does it power off before the source
 * has its ABORT, or the source waits for its timeout.
 */
static int delivered(int fd, int sec)
{
	double deadline = now_s() + sec;
	int queued;

	while (!ioctl(fd, SIOCOUTQ, &queued) && queued > 0) {
		if (now_s() > deadline)
			return -1;
		usleep(50);
	}
	return 0;
}

static void set_timeouts(int fd, int sec)
{
	struct timeval tv = { .tv_sec = sec };
	int one = 1;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int connect_to(const char *target)
{
	char host[64];
	int port, fd;
	struct sockaddr_in a = { .sin_family = AF_INET };

	if (sscanf(target, "%63[^:]:%d", host, &port) != 2 || inet_pton(AF_INET, host, &a.sin_addr) != 1) {
		errno = EINVAL;
		return -1;
	}
	a.sin_port = htons(port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	set_timeouts(fd, io_timeout_sec);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void link_down(const char *ifname)
{
	struct ifreq ifr = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (fd >= 0 && ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags &= ~IFF_UP;
		ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	if (fd >= 0)
		close(fd);
}

/* A size as the kernel's memparse() reads it: a number, then K, M or G */
static uint64_t parse_size(const char *s, char **end)
{
	uint64_t v = strtoull(s, end, 0);

	switch (**end) {
	case 'G': case 'g':
		v <<= 10;	/* fall through */
	case 'M': case 'm':
		v <<= 10;	/* fall through */
	case 'K': case 'k':
		v <<= 10;
		(*end)++;
	}
	return v;
}

/*
 * The RAM pages an image of this system describes, as its kernel counts
 * them: the System RAM, without a receiver's receive area
 * (precopy_receive_area=SIZE@START), which its source was booted without.
 * MemTotal leaves out what the receiver keeps out of until an image arrives.
 */
static uint64_t ram_pages(void)
{
	const uint64_t PAGE = MCG_MIG_PAGE_BYTES;
	static char line[4096];
	uint64_t area_start = 0, area_end = 0, pages = 0, start, end;
	FILE *f = fopen("/proc/cmdline", "r");
	char *p;

	if (f && fgets(line, sizeof(line), f) &&
	    (p = strstr(line, "precopy_receive_area="))) {
		uint64_t size = parse_size(p + strlen("precopy_receive_area="), &p);

		if (*p == '@') {
			area_start = (parse_size(p + 1, &p) + PAGE - 1) / PAGE;
			area_end = area_start + size / PAGE;
		}
	}
	if (f)
		fclose(f);
	f = fopen("/proc/iomem", "r");
	if (!f)
		return sysconf(_SC_PHYS_PAGES);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%" SCNx64 "-%" SCNx64, &start, &end) != 2 ||
		    !strstr(line, " : System RAM"))
			continue;
		start = (start + PAGE - 1) / PAGE;
		end = (end + 1) / PAGE;
		if (end > start)
			pages += end - start;
		if (area_start > start)
			start = area_start;
		if (area_end < end)
			end = area_end;
		if (end > start)
			pages -= end - start;
	}
	fclose(f);
	return pages;
}

static void fill_hello(struct mcg_mig_hello *h, int mode)
{
	struct utsname u;

	memset(h, 0, sizeof(*h));
	uname(&u);
	h->mode = mode;
	h->page_bytes = MCG_MIG_PAGE_BYTES;
	h->ram_pages = ram_pages();
	/* The build stamp (#1 SMP ...) tells identical kernel builds apart. */
	memcpy(h->kernel_release, u.version, sizeof(h->kernel_release) - 1);
}

/* ------------------------------------------------------------------ source */

static char iobuf[MCG_MIG_MAX_PAYLOAD];

/* Connects to the receiver and says HELLO; the receiver answers HELLO if it takes this system. */
static int open_link(struct link *l, const char *target, int mode, const char **why)
{
	struct mcg_mig_hello hello;
	uint32_t len;
	int type;

	l->fd = connect_to(target);
	if (l->fd < 0) {
		*why = "cannot connect to the receiver";
		return -1;
	}
	fill_hello(&hello, mode);
	if (send_frame(l, MCG_MIG_HELLO, &hello, sizeof(hello))) {
		*why = "sending HELLO failed";
		return -1;
	}
	type = recv_frame(l, iobuf, &len, why);
	if (type != MCG_MIG_HELLO) {
		if (type >= 0)
			*why = "the receiver refused to take this system";
		return -1;
	}
	return 0;
}

/*
 * The image goes in small frames: the receiver checks a frame whole before it
 * loads any of it, so with small frames it loads one while the next is on the
 * wire, and the first, holding the image's page lists, arrives at once.
 */
#define IMAGE_FRAME_BYTES (64 * 1024)

/*
 * Streams the snapshot image and waits for the receiver's ACK. Returns 0 only
 * when the receiver acknowledged the complete image; the ACK's payload, the
 * receiver's stats, is then in iobuf, @ack_len bytes.
 */
static int send_image(struct link *l, int snap, uint64_t *image_bytes, uint32_t *ack_len,
		      const char **why)
{
	struct mcg_mig_end end = { 0 };
	ssize_t n;
	int type;

	for (;;) {
		size_t fill = 0;

		/* read() gives one page at a time: batch pages into full frames. */
		while (fill < IMAGE_FRAME_BYTES) {
			n = read(snap, iobuf + fill, IMAGE_FRAME_BYTES - fill);
			if (n < 0) {
				*why = "reading /dev/snapshot failed";
				return -1;
			}
			if (n == 0)
				break;
			fill += n;
		}
		if (fill == 0)
			break;
		*why = "sending the image failed";
		if (send_frame(l, MCG_MIG_IMAGE, iobuf, fill))
			return -1;
		end.image_bytes += fill;
	}
	end.frames = l->frames_sent;
	*why = "sending END failed";
	if (send_frame(l, MCG_MIG_END, &end, sizeof(end)))
		return -1;
	/* The receiver still loads and checks the image before it answers. */
	set_timeouts(l->fd, 3 * io_timeout_sec);
	/* It restores once its ACK is acknowledged (delivered()): no delayed ACK. */
	setsockopt(l->fd, IPPROTO_TCP, TCP_QUICKACK, &(int){ 1 }, sizeof(int));
	type = recv_frame(l, iobuf, ack_len, why);
	if (type != MCG_MIG_ACK) {
		if (type >= 0)
			*why = "receiver refused the image";
		return -1;
	}
	*image_bytes = end.image_bytes;
	return 0;
}

static void emit_stats(const char *mode, struct precopy_stats *pc, double t0, double t_freeze,
		       double t_created, double t_acked, uint64_t image_bytes, struct link *l)
{
	char rounds[8192] = "";
	size_t off = 0;
	unsigned int i;

	for (i = 0; pc && i < pc->nr_rounds && off < sizeof(rounds) - 128; i++)
		off += snprintf(rounds + off, sizeof(rounds) - off,
				"%s{\"round\":%u,\"pages\":%llu,\"bytes\":%llu,\"seconds\":%.4f}",
				i ? "," : "", i, (unsigned long long)pc->round[i].pages,
				(unsigned long long)pc->round[i].bytes, pc->round[i].seconds);
	say("MCG-STATS {\"mode\":\"%s\",\"stop_reason\":\"%s\",\"in_use_pages\":%llu,\"rounds\":[%s],\"final_pages\":%llu,\"image_bytes\":%llu,"
	    "\"total_bytes\":%llu,\"page_bytes\":%llu,\"frames\":%llu,\"precopy_seconds\":%.4f,"
	    "\"snapshot_seconds\":%.4f,\"final_send_seconds\":%.4f,\"total_seconds\":%.4f}",
	    mode, pc && pc->stop_reason ? pc->stop_reason : "", (unsigned long long)(pc ? pc->in_use_pages : 0),
	    rounds, (unsigned long long)(image_bytes / MCG_MIG_PAGE_BYTES),
	    (unsigned long long)image_bytes, (unsigned long long)l->bytes_sent,
	    (unsigned long long)((pc ? pc->page_bytes : 0) + image_bytes),
	    (unsigned long long)l->frames_sent, t_freeze - t0, t_created - t_freeze,
	    t_acked - t_created, t_acked - t0);
}

/*
 * Kernel messages reach the serial console synchronously, and on an emulated
 * UART each line costs 1-3 ms (measured): the lines the freezer and the
 * snapshot code print while the system is stopped lengthened the downtime.
 * While the console is quiet they only go to the kernel log (emergencies
 * still print, and an oops raises the level itself); console_loud() then
 * echoes the errors logged meanwhile, so a failure still shows its cause.
 */
#define SYSLOG_ACTION_CONSOLE_OFF 6
#define SYSLOG_ACTION_CONSOLE_ON 7
#define KERN_ERR_LEVEL 3

static int kmsg_fd = -1;	/* /dev/kmsg, at the log's end when the console went quiet */

/* mcg_kmsg=all: echo every line of the quiet window with its kernel time (to time phases). */
static int kmsg_echo_all(void)
{
	const char *v = getenv("mcg_kmsg");

	return v && !strcmp(v, "all");
}

static void console_quiet(void)
{
	if (kmsg_fd < 0) {
		kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (kmsg_fd >= 0)
			lseek(kmsg_fd, 0, SEEK_END);
	}
	klogctl(SYSLOG_ACTION_CONSOLE_OFF, NULL, 0);
}

/* Console back on; echoes the errors logged since it went quiet and the lines holding @needle. */
static void console_loud(const char *needle)
{
	static char rec[8192];	/* a /dev/kmsg record: "prio,seq,usec,flags;text\n" */
	ssize_t n;

	klogctl(SYSLOG_ACTION_CONSOLE_ON, NULL, 0);
	if (kmsg_fd < 0)
		return;
	while ((n = read(kmsg_fd, rec, sizeof(rec) - 1)) > 0 || (n < 0 && errno == EPIPE)) {
		char *text, *nl;

		if (n < 0)	/* records overwritten meanwhile: reading goes on after them */
			continue;
		rec[n] = '\0';
		text = strchr(rec, ';');
		if (!text)
			continue;
		text++;
		nl = strchr(text, '\n');
		if (nl)
			*nl = '\0';
		if (kmsg_echo_all()) {
			unsigned long long usec = 0;

			sscanf(rec, "%*d,%*u,%llu", &usec);
			say("MCG-EVENT kernel [%llu] %s", usec, text);
		} else if ((atoi(rec) & 7) <= KERN_ERR_LEVEL || (needle && strstr(text, needle))) {
			say("MCG-EVENT kernel %s", text);
		}
	}
	close(kmsg_fd);
	kmsg_fd = -1;
}

static int role_migrate(const char *mode_name, const char *target)
{
	int mode = !strcmp(mode_name, "precopy") ? MCG_MIG_MODE_PRECOPY : MCG_MIG_MODE_STOPCOPY;
	struct precopy_stats pc = { 0 };
	struct link l = { .fd = -1 };
	const char *why = NULL;
	uint64_t image_bytes = 0;
	uint32_t ack_len = 0;
	double t0 = now_s(), t_freeze = 0, t_created, t_acked;
	int snap, in_suspend = 0, err;
	unsigned int attempt;

	if (strcmp(mode_name, "precopy") && strcmp(mode_name, "stopcopy")) {
		say("MCG-EVENT migrate-failed reason=\"unknown mode %s\"", mode_name);
		return 2;
	}
	say("MCG-EVENT migrate-start mode=%s target=%s mem_free_kb=%ld", mode_name, target,
	    mem_free_kb());
	snap = open("/dev/snapshot", O_RDONLY);
	if (snap < 0)
		die("open /dev/snapshot");
	/* Pre-copy needs the link before the snapshot: its socket is in the image. */
	if (mode == MCG_MIG_MODE_PRECOPY && open_link(&l, target, mode, &why))
		goto failed_running;
	for (attempt = 0;; attempt++) {
		if (mode == MCG_MIG_MODE_PRECOPY &&
		    precopy_rounds(snap, &l, link_send, &pc, attempt > 0, &why))
			goto failed_running;
		/* The receiver freezes its processes while this system stops. */
		if (mode == MCG_MIG_MODE_PRECOPY && send_frame(&l, MCG_MIG_FINAL, NULL, 0)) {
			why = "sending FINAL failed";
			goto failed_running;
		}
		/* Armed while the system runs: the snapshot buffer is allocated here. */
		if (mode == MCG_MIG_MODE_PRECOPY && precopy_arm_final(snap, &pc, attempt) < 0) {
			why = "arming the delta snapshot failed";
			goto failed_running;
		}
		t_freeze = now_s();
		console_quiet();
		if (ioctl(snap, SNAPSHOT_FREEZE) < 0) {
			why = "SNAPSHOT_FREEZE failed";
			goto failed_running;
		}
		err = ioctl(snap, SNAPSHOT_CREATE_IMAGE, &in_suspend);
		if (!err)
			break;
		if (mode != MCG_MIG_MODE_PRECOPY || errno != ENOSPC || attempt >= MAX_FINAL_ATTEMPTS - 1) {
			why = "SNAPSHOT_CREATE_IMAGE failed";
			goto failed_frozen;
		}
		/* The delta outgrew its buffer: run on, do one more round, try bigger. */
		ioctl(snap, SNAPSHOT_FREE);
		ioctl(snap, SNAPSHOT_UNFREEZE);
		console_loud(NULL);
		say("MCG-EVENT final-round-retry attempt=%u", attempt + 1);
	}
	if (!in_suspend) {
		/*
		 * We are the restored copy, running on the target. Thawing
		 * first lets the services answer before the kernel frees what
		 * the image's snapshot held (patch 0033).
		 */
		ioctl(snap, SNAPSHOT_UNFREEZE);
		console_loud(NULL);
		close(snap);
		if (l.fd >= 0)
			close(l.fd);
		say("MCG-EVENT restored mode=%s mem_free_kb=%ld", mode_name, mem_free_kb());
		return 0;
	}
	t_created = now_s();
	say("MCG-EVENT image-sending snapshot_seconds=%.3f", t_created - t_freeze);
	/* Stop-and-copy connects only now: a socket made after the snapshot is not in the image. */
	if (mode == MCG_MIG_MODE_STOPCOPY && open_link(&l, target, mode, &why))
		goto failed_frozen;
	if (send_image(&l, snap, &image_bytes, &ack_len, &why))
		goto failed_frozen;
	t_acked = now_s();
	/*
	 * The target restores now and answers at this address: off the service
	 * network at once, then idle while it restores, as a migrated QEMU source
	 * stands paused.  Where both share a host's CPUs, as in the tests, reporting
	 * and powering off at once slowed the target's restore loop by a quarter.
	 */
	link_down("eth0");
	usleep(HANDOVER_HEAD_START_US);
	/* The kernel's count of the pages it copied ("Delta image created (...)"). */
	console_loud("mage created (");
	/* The receiver restores at once; its stats came in the ACK. */
	if (ack_len)
		say("MCG-STATS %.*s", (int)ack_len, iobuf);
	emit_stats(mode_name, mode == MCG_MIG_MODE_PRECOPY ? &pc : NULL, t0, t_freeze, t_created,
		   t_acked, image_bytes, &l);
	say("MCG-EVENT migrated: the target runs this system now; powering off the source");
	/* The serial port still sends what the tty holds; the kernel's lines must not cut in. */
	tcdrain(STDOUT_FILENO);
	sync();
	reboot(LINUX_REBOOT_CMD_POWER_OFF);
	die("power off");
	return 1;

failed_frozen:
	/* Fail-safe: the receiver never acknowledged, so this copy goes on running. */
	ioctl(snap, SNAPSHOT_FREE);
	ioctl(snap, SNAPSHOT_UNFREEZE);
failed_running:
	console_loud(NULL);
	if (l.fd >= 0) {
		send_frame(&l, MCG_MIG_ABORT, NULL, 0);
		close(l.fd);
	}
	close(snap);	/* drops the pre-copy state */
	say("MCG-EVENT migrate-failed reason=\"%s\" errno=\"%s\" source=running", why, strerror(errno));
	return 1;
}

/*
 * Under an emulator that translates guest code when it first runs (QEMU's
 * TCG), a migration's stop ran code this VM had never run: the devices' and
 * the system core's suspend and resume, and the restored system's first steps.
 * Run them once at boot with the ioctls a migration makes, minus the rounds
 * and the image: as the source resumes after its snapshot (thaw) or as the
 * image restored here will (restore).  Not fatal: a failed rehearsal only
 * leaves that code cold.
 */
static int role_rehearse(const char *resume)
{
	double t0 = now_s();
	const char *why = NULL;
	int snap, err = 0;

	if (strcmp(resume, "thaw") && strcmp(resume, "restore")) {
		say("MCG-EVENT rehearse-failed reason=\"unknown resume %s\"", resume);
		return 2;
	}
	snap = open("/dev/snapshot", O_RDONLY);
	if (snap < 0) {
		say("MCG-EVENT rehearse-failed reason=\"open /dev/snapshot failed\" errno=\"%s\"",
		    strerror(errno));
		return 1;
	}
	console_quiet();
	/* Pre-copy state too: closing frees it, as on a restored system. */
	if (ioctl(snap, SNAPSHOT_PRECOPY_START) < 0)
		why = "SNAPSHOT_PRECOPY_START failed";
	else if (ioctl(snap, SNAPSHOT_FREEZE) < 0)
		why = "SNAPSHOT_FREEZE failed";
	else if (ioctl(snap, SNAPSHOT_PRECOPY_REHEARSE, !strcmp(resume, "restore")) < 0)
		why = "SNAPSHOT_PRECOPY_REHEARSE failed";
	if (why)
		err = errno;
	ioctl(snap, SNAPSHOT_FREE);
	ioctl(snap, SNAPSHOT_UNFREEZE);
	console_loud(NULL);
	close(snap);
	if (why) {
		say("MCG-EVENT rehearse-failed reason=\"%s\" errno=\"%s\"", why, strerror(err));
		return 1;
	}
	say("MCG-EVENT rehearsed resume=%s seconds=%.3f", resume, now_s() - t0);
	return 0;
}

/* ---------------------------------------------------------------- receiver */

/*
 * Where the receiver's time in the final image goes (MCG-STATS), timed a frame
 * at a time: the clock is a system call on some hypervisors, too dear per page.
 */
struct image_load_stats {
	double seconds;		/* inside write(): the kernel loading the image */
	double longest;		/* the slowest frame: it holds the page after which
				 * the kernel prepares the image */
};

/* write() to /dev/snapshot takes one page per call. */
static int write_image(int snap, const char *p, size_t len, struct image_load_stats *st)
{
	double t = now_s();

	while (len) {
		ssize_t n = write(snap, p, len);

		if (n <= 0)
			return -1;
		p += n;
		len -= n;
	}
	t = now_s() - t;
	st->seconds += t;
	if (t > st->longest)
		st->longest = t;
	return 0;
}

/* Offset of swsusp_info.pages in the image header page (x86_64, 6.1). */
#define SWSUSP_INFO_PAGES_OFFSET 424

/*
 * The receiver's stats are written out while the system stands still, by
 * hand: under emulation snprintf() took 0.56-0.63 ms there, these 0.23-0.31.
 */
static char *put_str(char *p, const char *s)
{
	while (*s)
		*p++ = *s++;
	return p;
}

static char *put_u64(char *p, unsigned long long v)
{
	char digits[20];
	int n = 0;

	do
		digits[n++] = '0' + v % 10;
	while (v /= 10);
	while (n)
		*p++ = digits[--n];
	return p;
}

/* @s seconds with four decimals */
static char *put_seconds(char *p, double s)
{
	unsigned long long u = s * 1e4 + 0.5;
	int i;

	p = put_u64(p, u / 10000);
	*p++ = '.';
	for (i = 1000; i; i /= 10)
		*p++ = '0' + u / i % 10;
	return p;
}

/* The receiver's stats as JSON in @buf; returns the length. */
static size_t receiver_stats(char *buf, uint64_t precopy_pages, uint64_t image_bytes,
			     double receive_s, double image_s, double freeze_s,
			     const struct image_load_stats *load)
{
	char *p = buf;

	p = put_str(p, "{\"receiver\":true,\"precopy_pages\":");
	p = put_u64(p, precopy_pages);
	p = put_str(p, ",\"image_bytes\":");
	p = put_u64(p, image_bytes);
	p = put_str(p, ",\"receive_seconds\":");
	p = put_seconds(p, receive_s);
	p = put_str(p, ",\"image_seconds\":");
	p = put_seconds(p, image_s);
	p = put_str(p, ",\"freeze_seconds\":");
	p = put_seconds(p, freeze_s);
	p = put_str(p, ",\"image_load_seconds\":");
	p = put_seconds(p, load->seconds);
	p = put_str(p, ",\"image_longest_frame_seconds\":");
	p = put_seconds(p, load->longest);
	p = put_str(p, "}");
	return p - buf;
}

static void write_proc(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f || fputs(text, f) < 0 || fclose(f))
		die(path);
}

/*
 * Size TCP's memory for the RAM the image arrives in, as tcp_init() sized the
 * source's. A kernel that keeps to its receive area found only the area free at
 * boot: its sockets could then buffer 1/128 of it (~190 KiB, not ~2 MiB), and
 * its TCP memory was under pressure at 1/16 of it. Pre-copy rounds crawled in
 * small windows, the final image too (measured: 7.3 ms on the wire, not 1.5).
 */
static void size_tcp_memory(uint64_t pages)
{
	uint64_t limit = pages / 16, rmem = pages * MCG_MIG_PAGE_BYTES / 128;
	char text[96];

	snprintf(text, sizeof(text), "%" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
		 limit / 4 * 3, limit, limit / 4 * 3 * 2);
	write_proc("/proc/sys/net/ipv4/tcp_mem", text);
	snprintf(text, sizeof(text), "4096 131072 %" PRIu64 "\n",
		 rmem < (6 << 20) ? rmem : (6 << 20));
	write_proc("/proc/sys/net/ipv4/tcp_rmem", text);
}

static int role_receive(const char *port_str)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(port_str)) };
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, snap = -1, type, mode, xen_nics;
	struct link l = { .fd = -1 };
	struct mcg_mig_hello mine, *hello;
	uint64_t written = 0, expected = 0, precopy_pages = 0;
	struct image_load_stats load = { 0 };
	const char *why = "";
	double t_first = 0, t_image = 0, freeze_seconds = 0, t_end;
	int frozen = 0;
	uint32_t len;

	size_tcp_memory(ram_pages());
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 1) < 0)
		die("receiver listen");
	/* The NICs the receiver does not use are handed over now, not in the downtime. */
	if (xen_nics_hand_over(XEN_NICS_IDLE, 5000) < 0)
		die("handing idle Xen NICs over");
	say("MCG-EVENT receiver-ready port=%s mem_free_kb=%ld", port_str, mem_free_kb());
	l.fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (l.fd < 0)
		die("accept");
	close(lfd);
	set_timeouts(l.fd, io_timeout_sec);
	type = recv_frame(&l, iobuf, &len, &why);
	hello = (struct mcg_mig_hello *)iobuf;
	fill_hello(&mine, 0);
	if (type != MCG_MIG_HELLO || len != sizeof(*hello)) {
		why = type < 0 ? why : "expected HELLO";
		goto abort;
	}
	if (hello->page_bytes != MCG_MIG_PAGE_BYTES || hello->ram_pages != mine.ram_pages ||
	    strncmp(hello->kernel_release, mine.kernel_release, sizeof(mine.kernel_release))) {
		why = "source kernel or RAM size differs from this receiver";
		goto abort;
	}
	mode = hello->mode;	/* iobuf is reused for every frame */
	say("MCG-EVENT receiving mode=%s", mode == MCG_MIG_MODE_PRECOPY ? "precopy" : "stopcopy");
	snap = open("/dev/snapshot", O_WRONLY);
	if (snap < 0) {
		why = "open /dev/snapshot";
		goto abort;
	}
	if (mode == MCG_MIG_MODE_PRECOPY && precopy_receiver_start(snap) < 0) {
		why = "SNAPSHOT_PRECOPY_LOAD_START failed";
		goto abort;
	}
	/* This receiver takes the system: the source may go on. */
	fill_hello(&mine, mode);
	if (send_frame(&l, MCG_MIG_HELLO, &mine, sizeof(mine))) {
		why = "answering HELLO failed";
		goto abort;
	}
	t_first = now_s();
	for (;;) {
		type = recv_frame(&l, iobuf, &len, &why);
		if (type < 0)
			goto abort;
		/*
		 * The processes of the receiver stop on a pre-copy source's FINAL,
		 * while the source stops itself, else at the first image frame; the
		 * kernel goes on receiving (more rounds, too, if the source retries).
		 */
		if ((type == MCG_MIG_FINAL || type == MCG_MIG_IMAGE) && !frozen) {
			double t = now_s();

			if (!kmsg_echo_all())	/* else the host stamps the restore's lines */
				console_quiet();
			if (ioctl(snap, SNAPSHOT_FREEZE) < 0) {
				why = "SNAPSHOT_FREEZE failed";
				goto abort;
			}
			frozen = 1;
			freeze_seconds = now_s() - t;
		}
		if (type == MCG_MIG_PAGES) {
			if (len % MCG_MIG_PAGE_RECORD_BYTES || precopy_load(snap, iobuf, len / MCG_MIG_PAGE_RECORD_BYTES) < 0) {
				why = "loading pre-copy pages failed";
				goto abort;
			}
			precopy_pages += len / MCG_MIG_PAGE_RECORD_BYTES;
		} else if (type == MCG_MIG_ROUND_END) {
			if (precopy_receiver_round_done(snap) < 0) {
				why = "SNAPSHOT_PRECOPY_LOAD_RESERVE failed";
				goto abort;
			}
		} else if (type == MCG_MIG_FINAL) {
			/* Frozen above: while the source stops, put more stashes in place. */
			if (precopy_receiver_round_done(snap) < 0) {
				why = "SNAPSHOT_PRECOPY_LOAD_RESERVE failed";
				goto abort;
			}
		} else if (type == MCG_MIG_IMAGE) {
			if (written == 0) {
				t_image = now_s();
				if (len >= SWSUSP_INFO_PAGES_OFFSET + 8)
					memcpy(&expected, iobuf + SWSUSP_INFO_PAGES_OFFSET, 8);
				expected *= MCG_MIG_PAGE_BYTES;
			}
			if (write_image(snap, iobuf, len, &load)) {
				why = "the kernel refused the image";
				goto abort;
			}
			written += len;
		} else if (type == MCG_MIG_END && len == sizeof(struct mcg_mig_end)) {
			struct mcg_mig_end *end = (struct mcg_mig_end *)iobuf;

			if (end->image_bytes != written || written != expected || !expected) {
				why = "image incomplete";
				goto abort;
			}
			break;
		} else {
			why = type == MCG_MIG_ABORT ? "source aborted" : "unexpected frame";
			goto abort;
		}
	}
	t_end = now_s();
	/*
	 * From here to the restore the system is stopped, so nothing is printed
	 * on QEMU (a line took 4-7 ms): the stats go in the ACK, and the source
	 * prints them.
	 */
	len = receiver_stats(iobuf, precopy_pages, written, t_end - t_first, t_end - t_image,
			     freeze_seconds, &load);
	if (send_frame(&l, MCG_MIG_ACK, iobuf, len)) {
		why = "sending ACK failed";
		goto abort;
	}
	if (delivered(l.fd, io_timeout_sec)) {
		why = "the source did not take the ACK";
		goto abort;
	}
	/* On Xen, the image's NICs take over this domain's backends (xen-nics.c). */
	xen_nics = xen_nics_hand_over(XEN_NICS_ALL, 5000);
	if (xen_nics < 0)
		say("MCG-EVENT warning: the restored system may have no network");
	if (xen_nics)	/* Xen only: its harness times the restore from here */
		say("MCG-EVENT acked: restoring");
	/*
	 * This kernel is discarded at the jump: on QEMU, where every device does
	 * its DMA through PCI, stopping the bus masters replaces the drivers'
	 * quiesce (patch 0011). Xen's devices are not PCI, and stop-and-copy
	 * stays the stock baseline.
	 */
	if (mode == MCG_MIG_MODE_PRECOPY && xen_nics == 0)
		ioctl(snap, SNAPSHOT_ATOMIC_RESTORE_STOP_DMA);
	else
		ioctl(snap, SNAPSHOT_ATOMIC_RESTORE);
	/* Only returns on failure; the source has powered off by now. */
	die("SNAPSHOT_ATOMIC_RESTORE");
	return 1;

abort:
	console_loud(NULL);
	say("MCG-EVENT receive-aborted reason=\"%s\" errno=\"%s\" image=never-run", why, strerror(errno));
	if (l.fd >= 0) {
		if (!send_frame(&l, MCG_MIG_ABORT, NULL, 0))
			delivered(l.fd, io_timeout_sec);
		close(l.fd);
	}
	if (snap >= 0)
		close(snap);	/* frees everything loaded and thaws */
	sync();
	reboot(LINUX_REBOOT_CMD_POWER_OFF);
	return 1;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	io_timeout_sec = env_ulong("mcg_io_timeout", 10);
	precopy_test_first_buffer_pages = env_ulong("mcg_test_first_buffer_pages", 0);
	hold_at = getenv("mcg_test_hold_at");
	hold_ms = env_ulong("mcg_test_hold_ms", 0);
	corrupt_frame = getenv("mcg_test_corrupt_frame") ? (long)env_ulong("mcg_test_corrupt_frame", 0) : -1;
	truncate_frame = getenv("mcg_test_truncate_frame") ? (long)env_ulong("mcg_test_truncate_frame", 0) : -1;
	if (argc >= 2 && !strcmp(argv[1], "workload"))
		return role_workload();
	if (argc >= 4 && !strcmp(argv[1], "migrate"))
		return role_migrate(argv[2], argv[3]);
	if (argc >= 3 && !strcmp(argv[1], "receive"))
		return role_receive(argv[2]);
	if (argc >= 3 && !strcmp(argv[1], "rehearse"))
		return role_rehearse(argv[2]);
	fprintf(stderr, "usage: mcg-guest workload | migrate stopcopy|precopy HOST:PORT | receive PORT"
		" | rehearse thaw|restore\n");
	return 2;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * mmharness: the mprotect()/mremap() workloads linux-mm argued over, as one static
 * program. In a guest it is /init: it mounts what it needs, reports the kernel it got,
 * runs the suite in /suite.txt, prints one line per result and powers off. On metal
 * it is an ordinary program: `mmharness SUITE-FILE` (root to change THP settings,
 * which it restores on exit).
 *
 * Every line it prints for the host starts with "MMEVAL " and ends with " crc=XXXXXXXX",
 * the CRC-32 of everything before that field, so that a kernel message printed in the
 * middle of a line is detected (and repaired by the host when it can be).
 *
 * The suite is a list of lines `run id=ID workload=NAME key=value ...`, written by the
 * host from the YAML suite. Times are CLOCK_MONOTONIC: under QEMU -icount that is
 * guest instructions, under KVM and on metal real time.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <termios.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define MAX_KV 32
#define MAX_REPS 1000
#define THP_DIR "/sys/kernel/mm/transparent_hugepage"

static long page_size;
static int is_init;
static int ncpus;

/* ---------- output ---------- */

static uint32_t crc32(const char *s, size_t n)
{
	uint32_t c = 0xffffffffu;

	for (size_t i = 0; i < n; i++) {
		c ^= (unsigned char)s[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & -(c & 1));
	}
	return ~c;
}

/* One line, one write(): "MMEVAL <text> crc=XXXXXXXX\n". */
static void emit(const char *fmt, ...)
{
	char buf[8192];
	va_list ap;
	int n;

	n = snprintf(buf, sizeof(buf), "MMEVAL ");
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - n - 32, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 32)
		n = sizeof(buf) - 32;
	n += snprintf(buf + n, sizeof(buf) - n, " crc=%08x\n", crc32(buf, n));
	for (int off = 0; off < n;) {
		ssize_t w = write(1, buf + off, n - off);
		if (w <= 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		off += w;
	}
	/*
	 * Wait until the console has sent the line: the UART's interrupts otherwise
	 * land in the next workload, and under -icount how many depends on how fast
	 * the host reads QEMU's console (a pty read at once gave toggle_touch 0.45%
	 * more instructions than one read slowly). Not a tty: nothing to wait for.
	 */
	tcdrain(1);
}

/* Values go into key=value fields: no spaces, no newlines, no quotes. */
static void sanitize(char *s)
{
	for (; *s; s++)
		if (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t' || *s == '"' || *s == '=')
			*s = '_';
}

/* ---------- small helpers ---------- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = 0;
	return 0;
}

static int write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, val, strlen(val));
	close(fd);
	return n == (ssize_t)strlen(val) ? 0 : -1;
}

/* "[madvise] always never" -> "madvise" */
static void bracketed(const char *in, char *out, size_t len)
{
	const char *a = strchr(in, '['), *b = a ? strchr(a, ']') : NULL;

	if (a && b && (size_t)(b - a) < len) {
		memcpy(out, a + 1, b - a - 1);
		out[b - a - 1] = 0;
	} else {
		snprintf(out, len, "%s", in);
	}
	sanitize(out);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	double *c = malloc(n * sizeof(*c));
	double m;

	memcpy(c, v, n * sizeof(*c));
	qsort(c, n, sizeof(*c), cmp_double);
	m = n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2;
	free(c);
	return m;
}

/* ---------- parameters ---------- */

struct params {
	int n;
	char key[MAX_KV][32];
	char val[MAX_KV][96];
};

static const char *get(const struct params *p, const char *k, const char *def)
{
	for (int i = 0; i < p->n; i++)
		if (!strcmp(p->key[i], k))
			return p->val[i];
	return def;
}

static long long num(const struct params *p, const char *k, long long def)
{
	const char *v = get(p, k, NULL);
	char *end;
	long long x;

	if (!v)
		return def;
	x = strtoll(v, &end, 0);
	if (*end == 'K' || *end == 'k')
		x <<= 10;
	else if (*end == 'M' || *end == 'm')
		x <<= 20;
	else if (*end == 'G' || *end == 'g')
		x <<= 30;
	return x;
}

static int parse_line(char *line, struct params *p)
{
	char *save, *tok;

	p->n = 0;
	for (tok = strtok_r(line, " \t\r\n", &save); tok; tok = strtok_r(NULL, " \t\r\n", &save)) {
		char *eq = strchr(tok, '=');

		if (!eq || p->n == MAX_KV)
			continue;
		*eq = 0;
		snprintf(p->key[p->n], sizeof(p->key[0]), "%s", tok);
		snprintf(p->val[p->n], sizeof(p->val[0]), "%s", eq + 1);
		sanitize(p->val[p->n]);
		p->n++;
	}
	return p->n;
}

/* ---------- THP settings (saved once, restored at exit on metal) ---------- */

#define MAX_KNOBS 64
static struct {
	char path[160];
	char value[32];
} saved[MAX_KNOBS];
static int nsaved;

static int set_knob(const char *path, const char *value)
{
	char cur[256], now[32];

	if (read_file(path, cur, sizeof(cur)))
		return -1;
	bracketed(cur, now, sizeof(now));
	if (!strcmp(now, value))
		return 0;
	int known = 0;
	for (int i = 0; i < nsaved; i++)
		known |= !strcmp(saved[i].path, path);
	if (!known && nsaved < MAX_KNOBS) {
		snprintf(saved[nsaved].path, sizeof(saved[0].path), "%s", path);
		snprintf(saved[nsaved].value, sizeof(saved[0].value), "%s", now);
		nsaved++;
	}
	return write_file(path, value);
}

static void restore_knobs(void)
{
	for (int i = nsaved - 1; i >= 0; i--)
		write_file(saved[i].path, saved[i].value);
	nsaved = 0;
}

static void on_signal(int sig)
{
	restore_knobs();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* mTHP sizes this kernel offers, in KiB. */
static int mthp_sizes(int *out, int max)
{
	int n = 0;

	for (int kb = 8; kb <= 2048 && n < max; kb *= 2) {
		char p[160];

		snprintf(p, sizeof(p), THP_DIR "/hugepages-%dkB/enabled", kb);
		if (access(p, F_OK) == 0)
			out[n++] = kb;
	}
	return n;
}

/*
 * Puts THP in the state a folio kind needs: "small" (nothing large anywhere),
 * "mthp-<N>k" (only N KiB folios, on madvise), "thp" (PMD-size on madvise).
 */
static int set_folio_policy(const char *folio, const char *kind, char *why, size_t len)
{
	int sizes[16], n = mthp_sizes(sizes, 16), want = 0, shared = strcmp(kind, "anon") != 0;
	char p[160];

	if (!strncmp(folio, "mthp-", 5))
		want = atoi(folio + 5);
	else if (!strncmp(folio, "thp", 3))
		want = 2048;
	else if (strcmp(folio, "small")) {
		snprintf(why, len, "unknown folio kind %s", folio);
		return -1;
	}
	if (access(THP_DIR "/enabled", F_OK)) {
		if (!want)
			return 0;
		snprintf(why, len, "kernel has no THP sysfs");
		return -1;
	}
	set_knob(THP_DIR "/enabled", "madvise");
	if (access(THP_DIR "/shmem_enabled", F_OK) == 0)
		set_knob(THP_DIR "/shmem_enabled", want && shared ? "advise" : "never");
	for (int i = 0; i < n; i++) {
		const char *v = sizes[i] == want ? (shared ? "never" : "madvise") : "never";

		snprintf(p, sizeof(p), THP_DIR "/hugepages-%dkB/enabled", sizes[i]);
		if (set_knob(p, v) && sizes[i] == want) {
			snprintf(why, len, "cannot set %s (root needed)", p);
			return -1;
		}
		snprintf(p, sizeof(p), THP_DIR "/hugepages-%dkB/shmem_enabled", sizes[i]);
		if (access(p, F_OK) == 0)
			set_knob(p, sizes[i] == want && shared ? "advise" : "never");
	}
	if (want && want != 2048) {
		int found = 0;

		for (int i = 0; i < n; i++)
			found |= sizes[i] == want;
		if (!found) {
			snprintf(why, len, "no %d KiB mTHP size on this kernel", want);
			return -1;
		}
	}
	return 0;
}

/* ---------- regions ---------- */

struct region {
	char *p;
	size_t len;
	long pages;
	int fd;
	void *raw;
	size_t raw_len;
};

static int tmpfs_ready;

/* Maps `len` bytes of `kind` (anon, shared, tmpfs), aligned for PMD THPs. */
static int region_map(struct region *r, size_t len, const char *kind, const char *folio, char *why, size_t wlen)
{
	int shared = strcmp(kind, "anon") != 0, flags, large = strcmp(folio, "small") != 0;
	size_t align = 2ul << 20;

	memset(r, 0, sizeof(*r));
	r->fd = -1;
	r->len = len;
	r->pages = len / page_size;
	if (!strcmp(kind, "tmpfs")) {
		/* In a guest our own tmpfs; on metal /dev/shm, which must really be tmpfs. */
		const char *dir = is_init ? "/tmp" : "/dev/shm";
		struct statfs sf;
		char path[64];

		if (!tmpfs_ready) {
			mkdir("/tmp", 01777);
			if (is_init && mount("tmpfs", "/tmp", "tmpfs", 0, "huge=never") && errno != EBUSY) {
				snprintf(why, wlen, "cannot mount tmpfs on /tmp: %s", strerror(errno));
				return -1;
			}
			tmpfs_ready = 1;
		}
		if (statfs(dir, &sf) || sf.f_type != 0x01021994 /* TMPFS_MAGIC */) {
			snprintf(why, wlen, "%s is not a tmpfs", dir);
			return -1;
		}
		snprintf(path, sizeof(path), "%s/mmharness.%d", dir, getpid());
		r->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (r->fd < 0 || ftruncate(r->fd, len)) {
			snprintf(why, wlen, "tmpfs file: %s", strerror(errno));
			return -1;
		}
		unlink(path);
	} else if (strcmp(kind, "anon") && strcmp(kind, "shared")) {
		snprintf(why, wlen, "unknown memory kind %s", kind);
		return -1;
	}
	r->raw_len = len + align;
	r->raw = mmap(NULL, r->raw_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r->raw == MAP_FAILED) {
		snprintf(why, wlen, "mmap reserve: %s", strerror(errno));
		return -1;
	}
	char *at = (char *)(((uintptr_t)r->raw + align - 1) & ~(align - 1));
	flags = MAP_FIXED | (shared ? MAP_SHARED : MAP_PRIVATE) | (r->fd >= 0 ? 0 : MAP_ANONYMOUS);
	r->p = mmap(at, len, PROT_READ | PROT_WRITE, flags, r->fd, 0);
	if (r->p == MAP_FAILED) {
		snprintf(why, wlen, "mmap: %s", strerror(errno));
		return -1;
	}
	if (madvise(r->p, len, large ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) && large) {
		snprintf(why, wlen, "madvise: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void region_unmap(struct region *r)
{
	if (r->raw)
		munmap(r->raw, r->raw_len);
	if (r->fd >= 0)
		close(r->fd);
	r->raw = NULL;
	r->fd = -1;
}

static void touch_write(struct region *r)
{
	for (long i = 0; i < r->pages; i++)
		((volatile char *)r->p)[i * page_size] = (char)i;
}

static long touch_read(struct region *r)
{
	long s = 0;

	for (long i = 0; i < r->pages; i++)
		s += ((volatile char *)r->p)[i * page_size];
	return s;
}

/* smaps field (kB) of the VMA that contains addr. */
static long smaps_kb(void *addr, const char *field)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[256];
	int inside = 0;
	long val = -1;
	size_t fl = strlen(field);

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long a, b;

		if (sscanf(line, "%lx-%lx ", &a, &b) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			inside = (uintptr_t)addr >= a && (uintptr_t)addr < b;
			continue;
		}
		if (inside && !strncmp(line, field, fl) && line[fl] == ':') {
			val = strtol(line + fl + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

/* How many pages of the region sit in large folios, by pagemap + kpageflags; -1 if
 * the kernel does not tell us. */
static long pages_in_large_folios(struct region *r)
{
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	int kf = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	long large = 0, seen = 0;
	uint64_t *ent = NULL;

	if (pm < 0 || kf < 0)
		goto out;
	ent = malloc(r->pages * sizeof(*ent));
	if (pread(pm, ent, r->pages * sizeof(*ent), (uintptr_t)r->p / page_size * sizeof(*ent)) !=
	    (ssize_t)(r->pages * sizeof(*ent)))
		goto out;
	for (long i = 0; i < r->pages; i++) {
		uint64_t pfn = ent[i] & ((1ull << 55) - 1), flags;

		if (!(ent[i] >> 63) || !pfn)
			continue;
		if (pread(kf, &flags, sizeof(flags), pfn * sizeof(flags)) != sizeof(flags))
			continue;
		seen++;
		/* KPF_COMPOUND_HEAD (15), KPF_COMPOUND_TAIL (16) */
		if (flags & ((1ull << 15) | (1ull << 16)))
			large++;
	}
out:
	if (pm >= 0)
		close(pm);
	if (kf >= 0)
		close(kf);
	free(ent);
	return seen == r->pages ? large : -1;
}

/*
 * The memory must be what the workload asked for, or the run is a failure: small
 * folios with nothing huge, or (mostly) large folios, PTE-mapped for "thp-pte".
 */
static int check_layout(struct region *r, const char *folio, char *why, size_t len)
{
	long large = pages_in_large_folios(r);
	long pmd = smaps_kb(r->p, "AnonHugePages");
	long shpmd = smaps_kb(r->p, "ShmemPmdMapped") + smaps_kb(r->p, "FilePmdMapped");

	if (!strcmp(folio, "small")) {
		if (pmd > 0 || shpmd > 0 || large > 0) {
			snprintf(why, len, "asked for small folios, got %ld kB PMD-mapped and %ld pages in large folios",
				 pmd + shpmd, large);
			return -1;
		}
		return 0;
	}
	if (large < 0) {
		snprintf(why, len, "cannot verify folio sizes: no readable /proc/kpageflags (root, CONFIG_PROC_PAGE_MONITOR)");
		return -1;
	}
	if (large * 100 < r->pages * 95) {
		snprintf(why, len, "asked for %s, only %ld of %ld pages are in large folios", folio, large, r->pages);
		return -1;
	}
	if (!strcmp(folio, "thp-pte") && (pmd > 0 || shpmd > 0)) {
		snprintf(why, len, "asked for PTE-mapped THP, %ld kB are still PMD-mapped", pmd + shpmd);
		return -1;
	}
	return 0;
}

/*
 * Brings a populated region into the asked shape. For "thp-pte", a sub-PMD mprotect
 * splits each PMD mapping while the folios stay large (anon maps them with PTEs at
 * once; shmem just unmaps the PMD, so the pages are faulted back in as PTEs).
 * Large folios first get MADV_NOHUGEPAGE: khugepaged must not collapse them back
 * during a long run, and a shmem fault must not map the PMD again; the folios
 * already there stay as they are.
 */
static void region_shape(struct region *r, const char *folio)
{
	if (!strcmp(folio, "small"))
		return;
	madvise(r->p, r->len, MADV_NOHUGEPAGE);
	if (!strcmp(folio, "thp-pte")) {
		for (char *q = r->p; q < r->p + r->len; q += 2ul << 20) {
			mprotect(q, page_size, PROT_READ);
			mprotect(q, page_size, PROT_READ | PROT_WRITE);
		}
		/* After NOHUGEPAGE, so that a shmem fault maps PTEs, not the PMD again. */
		touch_write(r);
	}
}

/* Populates the region, shapes it, and checks it is what was asked for. */
static int region_prepare(struct region *r, const char *folio, char *why, size_t len)
{
	touch_write(r);
	region_shape(r, folio);
	return check_layout(r, folio, why, len);
}

/* ---------- spinners: other CPUs running in this mm, so flushes must reach them ---------- */

static volatile int spin_stop;
static volatile long spin_sink;

static void *spinner(void *arg)
{
	long cpu = (long)arg;
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
	while (!spin_stop)
		spin_sink++;
	return NULL;
}

static int start_spinners(int n, pthread_t *t)
{
	cpu_set_t set;

	spin_stop = 0;
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	sched_setaffinity(0, sizeof(set), &set);
	for (int i = 0; i < n; i++)
		if (pthread_create(&t[i], NULL, spinner, (void *)(long)(1 + i % (ncpus > 1 ? ncpus - 1 : 1))))
			return i;
	return n;
}

static void stop_spinners(int n, pthread_t *t)
{
	spin_stop = 1;
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
}

/* ---------- workloads: each fills one value per repetition ---------- */

struct result {
	const char *metric;  /* primary metric name, lower is better */
	double per_rep[MAX_REPS];
	long pages, iterations;
	uint64_t total_ns;
	char why[256];
};

struct workload_ctx {
	const struct params *p;
	const char *kind, *folio;
	size_t size;
	long iters;
	int reps;
};

/* 1 and 6: one mapping, mprotect(PROT_NONE) / mprotect(RW) over all of it. */
static int w_toggle(struct workload_ctx *c, struct result *res)
{
	struct region r;

	if (region_map(&r, c->size, c->kind, c->folio, res->why, sizeof(res->why)) ||
	    region_prepare(&r, c->folio, res->why, sizeof(res->why))) {
		region_unmap(&r);
		return -1;
	}
	res->metric = "ns_per_call";
	res->pages = r.pages;
	for (long i = 0; i < c->iters / 10 + 1; i++) {
		mprotect(r.p, r.len, PROT_NONE);
		mprotect(r.p, r.len, PROT_READ | PROT_WRITE);
	}
	for (int rep = 0; rep < c->reps; rep++) {
		uint64_t t0 = now_ns();

		for (long i = 0; i < c->iters; i++) {
			mprotect(r.p, r.len, PROT_NONE);
			mprotect(r.p, r.len, PROT_READ | PROT_WRITE);
		}
		uint64_t dt = now_ns() - t0;
		res->total_ns += dt;
		res->per_rep[rep] = (double)dt / (2.0 * c->iters);
	}
	res->iterations = c->iters * c->reps;
	/* The folios must still be what we measured. */
	int bad = check_layout(&r, c->folio, res->why, sizeof(res->why));
	region_unmap(&r);
	return bad;
}

/* libMicro-style mean with samples beyond 3 sigma removed. */
static double trimmed_mean(double *v, long n)
{
	double s = 0, s2 = 0, mean, sd, t = 0;
	long k = 0;

	for (long i = 0; i < n; i++) {
		s += v[i];
		s2 += v[i] * v[i];
	}
	mean = s / n;
	sd = n > 1 ? __builtin_sqrt((s2 - s * s / n) / (n - 1)) : 0;
	for (long i = 0; i < n; i++)
		if (v[i] <= mean + 3 * sd && v[i] >= mean - 3 * sd) {
			t += v[i];
			k++;
		}
	return k ? t / k : mean;
}

/* 2: mprot_tw4m: (read every page + PROT_NONE) and PROT_RW alternately, each timed. */
static int w_toggle_touch(struct workload_ctx *c, struct result *res)
{
	struct region r;
	int fd = open("/dev/zero", O_RDWR | O_CLOEXEC);
	double *op;

	if (fd < 0) {
		snprintf(res->why, sizeof(res->why), "/dev/zero: %s", strerror(errno));
		return -1;
	}
	memset(&r, 0, sizeof(r));
	r.fd = -1;
	r.len = c->size;
	r.pages = c->size / page_size;
	r.p = mmap(NULL, r.len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	close(fd);
	if (r.p == MAP_FAILED) {
		snprintf(res->why, sizeof(res->why), "mmap /dev/zero: %s", strerror(errno));
		return -1;
	}
	r.raw = r.p;
	r.raw_len = r.len;
	madvise(r.p, r.len, strcmp(c->folio, "small") ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	if (region_prepare(&r, c->folio, res->why, sizeof(res->why))) {
		region_unmap(&r);
		return -1;
	}
	res->metric = "ns_per_op";
	res->pages = r.pages;
	op = malloc(c->iters * sizeof(*op));
	for (int rep = 0; rep < c->reps; rep++) {
		for (long i = 0; i < c->iters; i++) {
			uint64_t t0 = now_ns();

			if (i % 2 == 0) {
				spin_sink += touch_read(&r);
				mprotect(r.p, r.len, PROT_NONE);
			} else {
				mprotect(r.p, r.len, PROT_READ | PROT_WRITE);
			}
			op[i] = (double)(now_ns() - t0);
			res->total_ns += (uint64_t)op[i];
		}
		res->per_rep[rep] = trimmed_mean(op, c->iters);
		if (c->iters % 2)
			mprotect(r.p, r.len, PROT_READ | PROT_WRITE);
	}
	free(op);
	res->iterations = c->iters * c->reps;
	region_unmap(&r);
	return 0;
}

/* 3 and 6: a fresh shared mapping per cycle: protect, restore, write every page. */
static int w_shared_cycle(struct workload_ctx *c, struct result *res)
{
	long min_cycles = num(c->p, "min_cycles", 4), max_cycles = num(c->p, "max_cycles", 256);
	uint64_t budget = num(c->p, "budget_ms", 1200) * 1000000ull;

	res->metric = "ns_per_page";
	for (int rep = 0; rep < c->reps; rep++) {
		uint64_t timed = 0;
		long cycles = 0;

		for (long cyc = -2; cyc < max_cycles; cyc++) {
			struct region r;

			if (region_map(&r, c->size, c->kind, c->folio, res->why, sizeof(res->why))) {
				region_unmap(&r);
				return -1;
			}
			touch_write(&r);
			region_shape(&r, c->folio);
			if (cyc == -2 && rep == 0 && check_layout(&r, c->folio, res->why, sizeof(res->why))) {
				region_unmap(&r);
				return -1;
			}
			res->pages = r.pages;
			uint64_t t0 = now_ns();
			mprotect(r.p, r.len, PROT_READ);
			mprotect(r.p, r.len, PROT_READ | PROT_WRITE);
			touch_write(&r);
			uint64_t dt = now_ns() - t0;
			region_unmap(&r);
			if (cyc < 0)
				continue; /* warm-up */
			timed += dt;
			cycles++;
			if (cycles >= min_cycles && timed >= budget)
				break;
		}
		res->total_ns += timed;
		res->iterations += cycles;
		res->per_rep[rep] = (double)timed / (double)(cycles * res->pages);
	}
	return 0;
}

/* 4: one shared mapping; rounds of {PROT_READ, PROT_RW, write every page}. */
static int w_shared_steady(struct workload_ctx *c, struct result *res)
{
	struct region r;

	if (region_map(&r, c->size, c->kind, c->folio, res->why, sizeof(res->why)) ||
	    region_prepare(&r, c->folio, res->why, sizeof(res->why))) {
		region_unmap(&r);
		return -1;
	}
	res->metric = "ns_per_page";
	res->pages = r.pages;
	for (int i = 0; i < 10; i++) {
		mprotect(r.p, r.len, PROT_READ);
		mprotect(r.p, r.len, PROT_READ | PROT_WRITE);
		touch_write(&r);
	}
	for (int rep = 0; rep < c->reps; rep++) {
		uint64_t t0 = now_ns();

		for (long i = 0; i < c->iters; i++) {
			mprotect(r.p, r.len, PROT_READ);
			mprotect(r.p, r.len, PROT_READ | PROT_WRITE);
			touch_write(&r);
		}
		uint64_t dt = now_ns() - t0;
		res->total_ns += dt;
		res->per_rep[rep] = (double)dt / ((double)c->iters * r.pages);
	}
	res->iterations = c->iters * c->reps;
	region_unmap(&r);
	return 0;
}

/* 5: fresh prefaulted shared mapping, one timed mprotect(PROT_READ). */
static int w_single_protect(struct workload_ctx *c, struct result *res)
{
	res->metric = "ns_per_page";
	for (int rep = 0; rep < c->reps; rep++) {
		uint64_t timed = 0;

		for (long i = 0; i < c->iters; i++) {
			struct region r;

			if (region_map(&r, c->size, c->kind, c->folio, res->why, sizeof(res->why))) {
				region_unmap(&r);
				return -1;
			}
			touch_write(&r);
			if (i == 0 && rep == 0 && check_layout(&r, c->folio, res->why, sizeof(res->why))) {
				region_unmap(&r);
				return -1;
			}
			res->pages = r.pages;
			uint64_t t0 = now_ns();
			mprotect(r.p, r.len, PROT_READ);
			timed += now_ns() - t0;
			region_unmap(&r);
		}
		res->total_ns += timed;
		res->per_rep[rep] = (double)timed / ((double)c->iters * res->pages);
	}
	res->iterations = c->iters * c->reps;
	return 0;
}

/* 7: move a populated private region back and forth with mremap(MAYMOVE|FIXED). */
static int w_mremap(struct workload_ctx *c, struct result *res)
{
	struct region r;
	char *a, *b;

	/* Twice the room: the region moves between the two halves. */
	if (region_map(&r, 2 * c->size, "anon", c->folio, res->why, sizeof(res->why))) {
		region_unmap(&r);
		return -1;
	}
	a = r.p;
	b = r.p + c->size;
	munmap(b, c->size);
	r.len = c->size;
	r.pages = c->size / page_size;
	if (region_prepare(&r, c->folio, res->why, sizeof(res->why))) {
		region_unmap(&r);
		return -1;
	}
	res->metric = "ns_per_page";
	res->pages = r.pages;
	for (int rep = 0; rep < c->reps; rep++) {
		uint64_t t0 = now_ns();

		for (long i = 0; i < c->iters; i++) {
			char *from = i % 2 ? b : a, *to = i % 2 ? a : b;

			if (mremap(from, c->size, c->size, MREMAP_MAYMOVE | MREMAP_FIXED, to) != to) {
				snprintf(res->why, sizeof(res->why), "mremap: %s", strerror(errno));
				region_unmap(&r);
				return -1;
			}
		}
		if (c->iters % 2)
			mremap(b, c->size, c->size, MREMAP_MAYMOVE | MREMAP_FIXED, a);
		uint64_t dt = now_ns() - t0;
		res->total_ns += dt;
		res->per_rep[rep] = (double)dt / ((double)c->iters * r.pages);
	}
	res->iterations = c->iters * c->reps;
	region_unmap(&r);
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(struct workload_ctx *, struct result *);
} workloads[] = {
	{ "toggle", w_toggle },
	{ "toggle_touch", w_toggle_touch },
	{ "shared_cycle", w_shared_cycle },
	{ "shared_steady", w_shared_steady },
	{ "single_protect", w_single_protect },
	{ "mremap_move", w_mremap },
};

/* ---------- the suite ---------- */

static int run_one(const struct params *p)
{
	const char *id = get(p, "id", "?"), *name = get(p, "workload", "");
	struct workload_ctx c = {
		.p = p,
		.kind = get(p, "kind", "anon"),
		.folio = get(p, "folio", "small"),
		.size = num(p, "size", 4 << 20),
		.iters = num(p, "iters", 100),
		.reps = num(p, "reps", 5),
	};
	static struct result res;
	int threads = !strcmp(get(p, "threads", ""), "all") ? ncpus : num(p, "threads", 1), ok = -1;
	pthread_t spin[64];
	int nspin = 0;

	memset(&res, 0, sizeof(res));
	if (c.reps < 1 || c.reps > MAX_REPS || c.iters < 1 || c.size < (size_t)page_size) {
		emit("fail id=%s reason=bad_parameters", id);
		return -1;
	}
	c.size = (c.size + page_size - 1) / page_size * page_size;
	for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++) {
		if (strcmp(workloads[i].name, name))
			continue;
		if (set_folio_policy(c.folio, c.kind, res.why, sizeof(res.why)))
			break;
		if (threads > 1) {
			if (threads > ncpus) {
				snprintf(res.why, sizeof(res.why), "threads=%d but only %d CPUs", threads, ncpus);
				break;
			}
			nspin = start_spinners(threads - 1 < 64 ? threads - 1 : 64, spin);
		}
		ok = workloads[i].fn(&c, &res);
		if (nspin)
			stop_spinners(nspin, spin);
		break;
	}
	if (ok) {
		if (!res.why[0])
			snprintf(res.why, sizeof(res.why), "unknown workload %s", name);
		sanitize(res.why);
		emit("fail id=%s workload=%s reason=%s", id, name, res.why);
		return -1;
	}
	char samples[4096];
	int off = 0;
	double lo = res.per_rep[0], hi = res.per_rep[0];

	samples[0] = 0;
	for (int i = 0; i < c.reps; i++) {
		lo = res.per_rep[i] < lo ? res.per_rep[i] : lo;
		hi = res.per_rep[i] > hi ? res.per_rep[i] : hi;
		if (off < (int)sizeof(samples) - 32)
			off += snprintf(samples + off, sizeof(samples) - off, "%s%.3f", i ? "," : "", res.per_rep[i]);
	}
	emit("result id=%s workload=%s metric=%s unit=ns median=%.3f min=%.3f max=%.3f reps=%d pages=%ld "
	     "iterations=%ld total_ns=%llu threads=%d samples=%s",
	     id, name, res.metric, median(res.per_rep, c.reps), lo, hi, c.reps, res.pages, res.iterations,
	     (unsigned long long)res.total_ns, threads, samples);
	return 0;
}

/* The CPU's name as /proc/cpuinfo gives it (x86 "model name", ppc "cpu", arm64 the
 * implementer/part numbers). */
static void cpu_model(char *out, size_t len)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	char line[256], impl[32] = "", part[32] = "";

	snprintf(out, len, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *v = strchr(line, ':');

		if (!v)
			continue;
		v++;
		while (*v == ' ' || *v == '\t')
			v++;
		v[strcspn(v, "\n")] = 0;
		if (!strncmp(line, "model name", 10) || !strncmp(line, "cpu\t", 4)) {
			snprintf(out, len, "%s", v);
			break;
		}
		if (!strncmp(line, "CPU implementer", 15))
			snprintf(impl, sizeof(impl), "%s", v);
		if (!strncmp(line, "CPU part", 8))
			snprintf(part, sizeof(part), "%s", v);
	}
	fclose(f);
	if (!strcmp(out, "unknown") && impl[0])
		snprintf(out, len, "arm64-implementer-%s-part-%s", impl, part);
	sanitize(out);
}

static void report_env(void)
{
	struct utsname u;
	char buf[512], v[64], mthp[1024] = "", cs[64] = "?";
	int sizes[16], n = mthp_sizes(sizes, 16), off = 0;

	uname(&u);
	sanitize(u.release);
	sanitize(u.machine);
	if (read_file("/sys/devices/system/clocksource/clocksource0/current_clocksource", cs, sizeof(cs)))
		snprintf(cs, sizeof(cs), "?");
	sanitize(cs);
	for (int i = 0; i < n; i++) {
		char p[160];

		snprintf(p, sizeof(p), THP_DIR "/hugepages-%dkB/enabled", sizes[i]);
		if (read_file(p, buf, sizeof(buf)))
			continue;
		bracketed(buf, v, sizeof(v));
		off += snprintf(mthp + off, sizeof(mthp) - off, "%s%dK:%s", off ? "," : "", sizes[i], v);
	}
	char thp[64] = "none", shm[64] = "none";
	if (!read_file(THP_DIR "/enabled", buf, sizeof(buf)))
		bracketed(buf, thp, sizeof(thp));
	if (!read_file(THP_DIR "/shmem_enabled", buf, sizeof(buf)))
		bracketed(buf, shm, sizeof(shm));
	char model[128];
	cpu_model(model, sizeof(model));
	emit("env kernel=%s machine=%s page_size=%ld cpus=%d cpu_model=%s thp=%s shmem_thp=%s mthp=%s clocksource=%s init=%d",
	     u.release, u.machine, page_size, ncpus, model, thp, shm, mthp[0] ? mthp : "none", cs, is_init);
}

static void finish(int code)
{
	restore_knobs();
	if (is_init) {
		sync();
		reboot(RB_POWER_OFF);
		for (;;)
			pause();
	}
	exit(code);
}

int main(int argc, char **argv)
{
	const char *suite = argc > 1 ? argv[1] : "/suite.txt";
	static char text[1 << 20];
	int results = 0, failures = 0, fd;
	ssize_t n;

	is_init = getpid() == 1;
	if (is_init) {
		mkdir("/proc", 0555);
		mkdir("/sys", 0555);
		mkdir("/dev", 0755);
		mount("proc", "/proc", "proc", 0, NULL);
		mount("sysfs", "/sys", "sysfs", 0, NULL);
		mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	} else {
		signal(SIGINT, on_signal);
		signal(SIGTERM, on_signal);
		signal(SIGHUP, on_signal);
	}
	page_size = sysconf(_SC_PAGESIZE);
	ncpus = sysconf(_SC_NPROCESSORS_ONLN);
	fd = open(suite, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;
	if (n < 0) {
		emit("begin suite=none");
		emit("fail id=suite workload=none reason=cannot_read_%s", suite);
		emit("end results=0 failures=1");
		finish(2);
	}
	text[n] = 0;
	char *save, *line, name[64] = "unnamed";
	for (char *l = strstr(text, "# name="); l; l = NULL)
		sscanf(l, "# name=%63s", name);
	sanitize(name);
	emit("begin suite=%s", name);
	report_env();
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct params p;

		if (strncmp(line, "run ", 4))
			continue;
		if (!parse_line(line + 4, &p))
			continue;
		if (run_one(&p))
			failures++;
		else
			results++;
	}
	emit("end results=%d failures=%d", results, failures);
	finish(0);
	return 0;
}

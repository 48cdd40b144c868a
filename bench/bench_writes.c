/* SPDX-License-Identifier: MIT */
/*
 * bench_writes - abandonable writes of one file: n scattered 4 KiB writes
 * as one request (rctx_async_write_segs: a chain of linked SQEs that one
 * io-wq worker writes one after the other), as n requests
 * (rctx_async_write, all in flight at once), and as n pwrite(2) calls on
 * the caller's thread (which a hung disk would hold).
 *
 * A 4 MiB file on the local disk (/var/tmp), page cache hot, no sync: the
 * cost measured is the trip through the runtime thread and io-wq, not the
 * disk. Each batch writes n pages at offsets drawn from the file (distinct
 * within a batch). Per run, 2,000 / 500 (quick) batches of each kind, one
 * kind after the other, the first alternating from run to run; 5 / 3 runs;
 * every figure is the median over the runs of the mean time per batch.
 */
#include <fcntl.h>
#include <sys/uio.h>

#include "bench.h"
#include "ringctx.h"

#define PAGE 4096
#define FILE_PAGES 1024
#define KINDS 3

enum { SEGS, ASYNC, PWRITE };

static char page[PAGE];
static int left;

static void done_cb(void *arg, int res, void *data, unsigned flags)
{
	(void)arg;
	(void)data;
	(void)flags;
	if (res != PAGE * (int)(intptr_t)arg)
		bench_die("write", res < 0 ? -res : EIO);
	left--;
}

/* n distinct page offsets of the file. */
static void draw(int64_t *off, int n, uint64_t *rng)
{
	for (int i = 0; i < n; i++) {
		bool again;

		do {
			off[i] = (int64_t)(bench_xorshift(rng) % FILE_PAGES) * PAGE;
			again = false;
			for (int j = 0; j < i; j++)
				again |= off[j] == off[i];
		} while (again);
	}
}

static void batch(int kind, rctx_ring_t *ring, int fd, const int64_t *off, int n)
{
	struct iovec iov[RCTX_SEGS_MAX];

	switch (kind) {
	case SEGS:
		for (int i = 0; i < n; i++)
			iov[i] = (struct iovec){ page, PAGE };
		left = 1;
		if (rctx_async_write_segs(ring, rctx_background(), fd, iov, off, (unsigned)n, 0,
					  done_cb, (void *)(intptr_t)n))
			bench_die("rctx_async_write_segs", EIO);
		break;
	case ASYNC:
		left = n;
		for (int i = 0; i < n; i++)
			if (rctx_async_write(ring, rctx_background(), fd, page, PAGE, off[i],
					     done_cb, (void *)(intptr_t)1))
				bench_die("rctx_async_write", EIO);
		break;
	default:
		for (int i = 0; i < n; i++)
			if (pwrite(fd, page, PAGE, off[i]) != PAGE)
				bench_die("pwrite", errno);
		return;
	}
	while (left)
		rctx_ring_run(ring, RCTX_FOREVER);
}

/* Mean ns per batch of kind over batches batches. */
static double timed(int kind, rctx_ring_t *ring, int fd, int n, int batches, uint64_t *rng)
{
	int64_t off[RCTX_SEGS_MAX], t = 0;

	for (int b = 0; b < batches; b++) {
		int64_t t0;

		draw(off, n, rng);
		t0 = bench_now();
		batch(kind, ring, fd, off, n);
		t += bench_now() - t0;
	}
	return (double)t / batches;
}

static void measure(rctx_ring_t *ring, int fd, int n)
{
	int runs = BENCH_Q(3, 5), batches = BENCH_Q(500, 2000) / (n / 8);
	double v[KINDS][5], med[KINDS];
	uint64_t rng = 0x9e3779b97f4a7c15ULL;
	char name[64], a[32], b[32], c[32];

	for (int k = 0; k < KINDS; k++)
		timed(k, ring, fd, n, batches / 10 + 1, &rng); /* untimed */
	for (int r = 0; r < runs; r++)
		for (int i = 0; i < KINDS; i++) {
			int k = (i + r) % KINDS;

			v[k][r] = timed(k, ring, fd, n, batches, &rng);
		}
	for (int k = 0; k < KINDS; k++)
		med[k] = bench_median(v[k], (size_t)runs);
	printf("Writes/%dx4k   segs %9s | async_write x %d %9s (%.2fx segs) | pwrite x %d %9s (segs %.1fx)\n",
	       n, bench_fmt_ns(med[SEGS], a, sizeof a), n, bench_fmt_ns(med[ASYNC], b, sizeof b),
	       med[ASYNC] / med[SEGS], n, bench_fmt_ns(med[PWRITE], c, sizeof c),
	       med[SEGS] / med[PWRITE]);
	snprintf(name, sizeof name, "Writes/%dx4k/segs", n);
	bench_row("writes", name, "ns", med[SEGS], "pwrite", med[PWRITE], NAN, NAN, NAN, NAN);
	snprintf(name, sizeof name, "Writes/%dx4k/async_write", n);
	bench_row("writes", name, "ns", med[ASYNC], "segs", med[SEGS], NAN, NAN, NAN, NAN);
}

int main(void)
{
	char path[128];
	rctx_ring_t *ring;
	int fd, ret;

	bench_init("writes: n scattered 4 KiB writes of a file as one request, n requests, n pwrite");
	snprintf(path, sizeof path, "/var/tmp/rctx-bench-writes-%d", (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		bench_die(path, errno);
	unlink(path);
	memset(page, 'w', sizeof page);
	for (int i = 0; i < FILE_PAGES; i++)
		if (pwrite(fd, page, PAGE, (off_t)i * PAGE) != PAGE)
			bench_die("pwrite", errno);
	ret = rctx_ring_create(&ring, 256);
	if (ret < 0)
		bench_die("rctx_ring_create", -ret);
	printf("(/var/tmp, a %d KiB file, page cache hot, no sync; median of %d runs of the mean per batch)\n",
	       FILE_PAGES * PAGE / 1024, BENCH_Q(3, 5));
	measure(ring, fd, 8);
	measure(ring, fd, 64);
	rctx_ring_destroy(ring);
	close(fd);
	bench_finish();
	return 0;
}

/*
 * slow-fsync.so: an LD_PRELOAD shim for `make bench-slow-disk` (docs/PERFORMANCE.md,
 * "Group commit on a slow disk"). It makes every fsync(2) and fdatasync(2) take at least
 * ANONREG_BENCH_FSYNC_DELAY_US microseconds longer (default 2000), after the real call has
 * returned, so durability is unchanged and only the time a commit waits grows.
 *
 * The VM the benchmarks run on has an fsync of a fraction of a millisecond, so group commit
 * cannot show its effect there; a rotating disk or a network volume takes 2 to 10 ms. Benchmark
 * use only: never preload it into a daemon that serves clinics.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long delay_us(void) {
    static long delay = -1;
    if (delay < 0) {
        const char *text = getenv("ANONREG_BENCH_FSYNC_DELAY_US");
        long value = text ? strtol(text, NULL, 10) : 2000;
        delay = value < 0 ? 0 : value;
    }
    return delay;
}

static void wait_delay(void) {
    long us = delay_us();
    struct timespec left = { us / 1000000, (us % 1000000) * 1000 };
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {}
}

/* Calls the real function, then waits; errno is the real call's. */
static int delayed(const char *name, int fd) {
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, name);
    int rc = real(fd);
    int saved = errno;
    wait_delay();
    errno = saved;
    return rc;
}

int fsync(int fd) { return delayed("fsync", fd); }

int fdatasync(int fd) { return delayed("fdatasync", fd); }

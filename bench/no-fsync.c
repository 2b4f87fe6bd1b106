/*
 * no-fsync.so: an LD_PRELOAD shim for comparing two builds' CPU work (docs/PERFORMANCE.md,
 * "Storage contract (issue 15)", set 4). fsync(2) and fdatasync(2) return at once without
 * flushing, so a run measures what the code does and not how long this VM's disk takes to
 * flush, which varies by more than the difference being measured.
 *
 * It throws durability away: benchmark use only, on scratch state directories. Never preload it
 * into a daemon that serves clinics.
 *
 *   cc -O2 -shared -fPIC -o .build/no-fsync.so bench/no-fsync.c
 *   LD_PRELOAD=$PWD/.build/no-fsync.so .build/release/anonreg-bench run --ops enrol --connections 1 --no-half-peak
 */
int fsync(int fd) {
    (void)fd;
    return 0;
}

int fdatasync(int fd) {
    (void)fd;
    return 0;
}

# Sourced (sh) by bench/profile.sh and bench/switches.sh: the anonregd that a running
# `anonreg-bench run` started.
#
# bench_daemon_pid BENCH_PID OUTPUT NAME: prints the pid of BENCH_PID's anonregd child once it
# appears (within 60 s); otherwise prints OUTPUT (the bench's output) and "NAME: no anonregd
# appeared" on standard error and exits 1.
bench_daemon_pid() {
    for _ in $(seq 1 600); do
        found=$(pgrep -n -P "$1" anonregd || true)
        [ -n "$found" ] && { echo "$found"; return 0; }
        sleep 0.1
    done
    cat "$2" >&2
    echo "$3: no anonregd appeared" >&2
    exit 1
}

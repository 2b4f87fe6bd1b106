#!/usr/bin/env bash
# `make fuzz` (issue 8): builds the libFuzzer targets with AddressSanitizer in their own scratch
# directory (.build-fuzz, so the normal build is untouched) and runs each for FUZZ_SECONDS
# (default 60). Seeds: fuzz/corpus/<target> (committed; scripts/fuzz-seeds.py). New inputs go to
# .build-fuzz/corpus/<target>, crashes to .build-fuzz/crashes/. Exits non-zero on any crash.
# FUZZ_TARGETS limits the run (e.g. FUZZ_TARGETS=crypto). See docs/ROBUSTNESS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-60}"
scratch="${FUZZ_SCRATCH:-$PWD/.build-fuzz}"
read -r -a targets <<<"${FUZZ_TARGETS:-request crypto response}"
flags=(-c release --scratch-path "$scratch"
       -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DANONREG_LIBFUZZER)

started=$(date +%s)
for target in "${targets[@]}"; do
    swift build "${flags[@]}" --product "fuzz-$target"
done
bin="$(swift build "${flags[@]}" --show-bin-path)"
built=$(date +%s)
echo "fuzz: build took $((built - started)) s"

status=0
summary=()
for target in "${targets[@]}"; do
    work="$scratch/corpus/$target"
    mkdir -p "$work" "$scratch/crashes"
    log="$scratch/fuzz-$target.log"
    echo "fuzz: fuzz-$target for ${seconds} s (log: $log)"
    # Swift's runtime keeps some allocations for the process's life: leak reports would be noise.
    if ! ASAN_OPTIONS="detect_leaks=0:${ASAN_OPTIONS:-}" "$bin/fuzz-$target" \
        -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=3072 -print_final_stats=1 \
        -artifact_prefix="$scratch/crashes/$target-" "$work" "fuzz/corpus/$target" >"$log" 2>&1; then
        status=1
        echo "fuzz: fuzz-$target FAILED; the last lines of its log:" >&2
        tail -n 40 "$log" >&2
        ls -1 "$scratch/crashes/$target-"* 2>/dev/null | sed 's/^/fuzz: reproducer /' >&2 || true
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    summary+=("fuzz-$target: ${runs:-?} executions in ${seconds} s, ${rate:-?} exec/s, ${cov:-cov: ?}, corpus $(ls "$work" | wc -l) entries")
done
printf 'fuzz: %s\n' "${summary[@]}"
echo "fuzz: total $(( $(date +%s) - started )) s (build $((built - started)) s)"
exit "$status"

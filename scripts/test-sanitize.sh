#!/usr/bin/env bash
# `make test-sanitize` (issue 23 §6): every Swift test suite under sanitizers, each build in a
# scratch directory of its own (the normal build is untouched). docs/ROBUSTNESS.md §Sanitizers.
#
#   address    AddressSanitizer on all Swift code, UndefinedBehaviorSanitizer on the C targets
#              (CAnonregLinux; libsodium is Debian's, not rebuilt). .build-asan
#   thread     ThreadSanitizer, with Synchronization.Mutex swapped for a pthread mutex TSan can
#              see (-D ANONREG_TSAN, Sources/TSanLockShim). .build-tsan
#
# SANITIZERS picks (default "address thread"); SANITIZE_FILTER passes a --filter to swift test.
# Leak reports are off: Swift's runtime keeps some allocations for the process's life.
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a sanitizers <<<"${SANITIZERS:-address thread}"
filter=()
if [ -n "${SANITIZE_FILTER:-}" ]; then filter=(--filter "$SANITIZE_FILTER"); fi
status=0
for sanitizer in "${sanitizers[@]}"; do
    started=$(date +%s)
    case "$sanitizer" in
    address)
        scratch=.build-asan
        flags=(-Xswiftc -sanitize=address -Xcc -fsanitize=undefined -Xcc -fno-sanitize-recover=undefined)
        export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:${ASAN_OPTIONS:-}"
        export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
        ;;
    thread)
        scratch=.build-tsan
        flags=(-Xswiftc -sanitize=thread -Xswiftc -DANONREG_TSAN)
        export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:${TSAN_OPTIONS:-}"
        ;;
    *) echo "test-sanitize: unknown sanitizer $sanitizer" >&2; exit 2 ;;
    esac
    echo "test-sanitize: $sanitizer: building ($scratch)"
    swift build --build-tests --scratch-path "$scratch" "${flags[@]}"
    built=$(date +%s)
    echo "test-sanitize: $sanitizer: build took $((built - started)) s; running the suites"
    if ! swift test --skip-build --scratch-path "$scratch" "${flags[@]}" "${filter[@]}"; then
        status=1
        echo "test-sanitize: $sanitizer: FAILED" >&2
    fi
    echo "test-sanitize: $sanitizer: total $(( $(date +%s) - started )) s (build $((built - started)) s)"
done
exit "$status"

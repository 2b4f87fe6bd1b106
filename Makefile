# anonreg: the two commands a newcomer needs are `make run` and `make test` (see README.md).
SWIFT ?= swift
STATE_DIR ?= $(CURDIR)/state
BIN := $(CURDIR)/.build/debug

.PHONY: bench-postgres setup build test run clean release man man-check alerts-check install uninstall faults fuzz bench bench-pgcrypto bench-history bench-fairness bench-slow-disk bench-scale bench-audit bench-noise test-sanitize format-lint boundaries-check

# Install layout (override on the command line: make install DESTDIR=/tmp/root PREFIX=/usr).
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR := $(PREFIX)/bin
UNITDIR := $(PREFIX)/lib/systemd/system
SYSUSERSDIR := $(PREFIX)/lib/sysusers.d
TMPFILESDIR := $(PREFIX)/lib/tmpfiles.d
DOCDIR := $(PREFIX)/share/doc/anonreg
MANDIR := $(PREFIX)/share/man
SYSCONFDIR := /etc/anonreg
# The binaries to install: a release build unless BINARIES names another build directory.
BINARIES ?= $(CURDIR)/.build/release
# Man pages are generated from the commands' definitions and docs/man/*.sections, and committed
# (docs/man); `make man` refreshes them, `make man-check` (in `make test`) checks them.
MANPAGES := $(CURDIR)/docs/man

setup:
	@./scripts/setup.sh

build: setup
	$(SWIFT) build

## Install what is missing, check the module boundaries (scripts/check-boundaries.py: each C
## library and the database driver only inside its module, by `internal import`), build, and run
## every test suite: the Swift suites (recording every answer they get from anonregd), the check
## of those answers against docs/openapi.yaml (scripts/check-responses.py), the man pages
## (scripts/check-man.sh), every command line the docs and units show against the built CLI
## (scripts/check-guide.py), the alert rules (scripts/check-alerts.sh, promtool), the protocol
## docs check, the Python client and the remote-clinic test with a real sshd, then the systemd
## and operations walks. Needs root.
test: setup
	python3 scripts/check-boundaries.py
	$(SWIFT) build --build-tests
	BIN="$$($(SWIFT) build --show-bin-path)" ./scripts/check-clinic-binary.sh
	rm -f $(CURDIR)/.build/responses.jsonl
	ANONREG_RESPONSE_LOG=$(CURDIR)/.build/responses.jsonl $(SWIFT) test
	python3 scripts/check-responses.py docs/openapi.yaml $(CURDIR)/.build/responses.jsonl --require-every-operation
	BIN="$$($(SWIFT) build --show-bin-path)" ./scripts/check-man.sh
	python3 scripts/check-guide.py "$$($(SWIFT) build --show-bin-path)"
	./scripts/check-alerts.sh
	./scripts/test-python.sh "$$($(SWIFT) build --show-bin-path)"
	BINARIES="$$($(SWIFT) build --show-bin-path)" ./scripts/test-systemd.sh
	BINARIES="$$($(SWIFT) build --show-bin-path)" ./scripts/test-operations.sh

## Fault runs against the real daemon (docs/ROBUSTNESS.md): 50 SIGKILLs under write load and
## rewrap, disk full, corrupted files at start. Needs root for the tmpfs (falls back to RLIMIT_FSIZE).
faults: setup
	./scripts/faults.sh

## Every Swift suite under AddressSanitizer (+ UBSan on the C targets) and ThreadSanitizer, in
## build directories of their own (docs/ROBUSTNESS.md §Sanitizers). SANITIZERS="address" for one.
test-sanitize: setup
	./scripts/test-sanitize.sh

## libFuzzer targets with AddressSanitizer, FUZZ_SECONDS (default 60) each (docs/ROBUSTNESS.md).
fuzz: setup
	./scripts/fuzz.sh

## Install what is missing, build, and start the daemon on ./state.
run: build
	@STATE_DIR="$(STATE_DIR)" BIN="$(BIN)" ./scripts/run-local.sh

clean:
	rm -rf .build

## Each C library and the database driver imported only in its own module, by `internal import`.
boundaries-check:
	python3 scripts/check-boundaries.py

## The code style of .swift-format, checked (not applied) on Sources and Tests. `swift format
## --in-place --recursive Sources Tests` applies it.
format-lint:
	$(SWIFT) format lint --strict --recursive --parallel Sources Tests

release: setup
	$(SWIFT) build -c release

## Regenerate docs/man from the commands' own definitions (`--experimental-dump-help`, the JSON
## swift-argument-parser's generate-manual reads) and the hand-written sections in
## docs/man/*.sections (FILES, ENVIRONMENT, EXIT STATUS, SEE ALSO, ...): scripts/manpage.py.
## Run it after changing a command's options or a .sections file, and commit the result.
man: setup
	$(SWIFT) build --product anonreg
	$(SWIFT) build --product anonregd
	$(SWIFT) build --product anonreg-clinic
	python3 scripts/manpage.py $(BIN)/anonreg docs/man/anonreg.1.sections 1 > $(MANPAGES)/anonreg.1
	python3 scripts/manpage.py $(BIN)/anonreg-clinic docs/man/anonreg-clinic.1.sections 1 > $(MANPAGES)/anonreg-clinic.1
	python3 scripts/manpage.py $(BIN)/anonregd docs/man/anonregd.8.sections 8 > $(MANPAGES)/anonregd.8

## The committed pages are what `make man` makes from the current commands (no drift), and
## `mandoc -Tlint` reports nothing for them (scripts/check-man.sh). Part of `make test`.
man-check:
	BIN="$(BIN)" ./scripts/check-man.sh

## docs/alerts.yml is valid and each alert fires when, and only when, its condition holds
## (promtool check rules and test rules: scripts/check-alerts.sh). Part of `make test`.
alerts-check:
	./scripts/check-alerts.sh

## Install binaries, systemd units, sysusers/tmpfiles snippets, a default configuration (kept if
## present), docs and man pages. Creates no user, key or database: see docs/OPERATIONS.md.
install:
	@if [ "$(BINARIES)" = "$(CURDIR)/.build/release" ]; then $(MAKE) --no-print-directory release; fi
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(UNITDIR)/anonregd.service.d \
		$(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(DOCDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSCONFDIR)
	install -m 0755 $(BINARIES)/anonregd $(BINARIES)/anonreg $(BINARIES)/anonreg-clinic $(DESTDIR)$(BINDIR)/
	sed 's|/usr/local|$(PREFIX)|g' systemd/anonregd.service > $(DESTDIR)$(UNITDIR)/anonregd.service
	sed 's|/usr/local|$(PREFIX)|g' systemd/anonregd.socket > $(DESTDIR)$(UNITDIR)/anonregd.socket
	chmod 0644 $(DESTDIR)$(UNITDIR)/anonregd.service $(DESTDIR)$(UNITDIR)/anonregd.socket
	sed 's|/usr/local|$(PREFIX)|g' systemd/anonreg-rotate.service > $(DESTDIR)$(UNITDIR)/anonreg-rotate.service
	sed 's|/usr/local|$(PREFIX)|g' systemd/anonreg-rotate.timer > $(DESTDIR)$(UNITDIR)/anonreg-rotate.timer
	chmod 0644 $(DESTDIR)$(UNITDIR)/anonreg-rotate.service $(DESTDIR)$(UNITDIR)/anonreg-rotate.timer
	sed 's|/usr/local|$(PREFIX)|g' systemd/anonreg-backup.service > $(DESTDIR)$(UNITDIR)/anonreg-backup.service
	sed 's|/usr/local|$(PREFIX)|g' systemd/anonreg-backup.timer > $(DESTDIR)$(UNITDIR)/anonreg-backup.timer
	chmod 0644 $(DESTDIR)$(UNITDIR)/anonreg-backup.service $(DESTDIR)$(UNITDIR)/anonreg-backup.timer
	install -m 0644 systemd/anonregd.service.d/credentials.conf.example $(DESTDIR)$(UNITDIR)/anonregd.service.d/
	install -m 0644 systemd/anonregd.service.d/postgresql-tcp.conf.example $(DESTDIR)$(UNITDIR)/anonregd.service.d/
	install -m 0644 systemd/anonreg.sysusers $(DESTDIR)$(SYSUSERSDIR)/anonreg.conf
	install -m 0644 systemd/anonreg.tmpfiles $(DESTDIR)$(TMPFILESDIR)/anonreg.conf
	install -m 0644 README.md CHANGELOG.md SECURITY.md LICENSE docs/*.md docs/openapi.yaml docs/alerts.yml docs/linkage-profile-v1.json $(DESTDIR)$(DOCDIR)/
	install -d $(DESTDIR)$(DOCDIR)/ssh
	install -m 0644 ssh/anonreg-remote-clinics.conf ssh/anonreg-clinic-forward.service $(DESTDIR)$(DOCDIR)/ssh/
	install -m 0644 keys/README.md $(DESTDIR)$(DOCDIR)/KEYRING.md
	sed 's|/usr/local|$(PREFIX)|g' $(MANPAGES)/anonreg.1 > $(DESTDIR)$(MANDIR)/man1/anonreg.1
	sed 's|/usr/local|$(PREFIX)|g' $(MANPAGES)/anonreg-clinic.1 > $(DESTDIR)$(MANDIR)/man1/anonreg-clinic.1
	sed 's|/usr/local|$(PREFIX)|g' $(MANPAGES)/anonregd.8 > $(DESTDIR)$(MANDIR)/man8/anonregd.8
	chmod 0644 $(DESTDIR)$(MANDIR)/man1/anonreg.1 $(DESTDIR)$(MANDIR)/man1/anonreg-clinic.1 $(DESTDIR)$(MANDIR)/man8/anonregd.8
	@if [ ! -e $(DESTDIR)$(SYSCONFDIR)/anonreg.toml ]; then \
		$(BINARIES)/anonreg config-template > $(DESTDIR)$(SYSCONFDIR)/anonreg.toml && \
		chmod 0644 $(DESTDIR)$(SYSCONFDIR)/anonreg.toml && echo "wrote $(DESTDIR)$(SYSCONFDIR)/anonreg.toml"; \
	else echo "kept $(DESTDIR)$(SYSCONFDIR)/anonreg.toml"; fi

## Remove what install put there. The configuration, the state (database, keys) and the users
## stay: removing a registry is an explicit decision (docs/OPERATIONS.md).
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/anonregd $(DESTDIR)$(BINDIR)/anonreg $(DESTDIR)$(BINDIR)/anonreg-clinic
	rm -f $(DESTDIR)$(UNITDIR)/anonregd.service $(DESTDIR)$(UNITDIR)/anonregd.socket
	rm -f $(DESTDIR)$(UNITDIR)/anonreg-rotate.service $(DESTDIR)$(UNITDIR)/anonreg-rotate.timer
	rm -f $(DESTDIR)$(UNITDIR)/anonreg-backup.service $(DESTDIR)$(UNITDIR)/anonreg-backup.timer
	rm -f $(DESTDIR)$(UNITDIR)/anonregd.service.d/credentials.conf.example
	rm -f $(DESTDIR)$(UNITDIR)/anonregd.service.d/postgresql-tcp.conf.example
	-rmdir $(DESTDIR)$(UNITDIR)/anonregd.service.d 2>/dev/null
	rm -f $(DESTDIR)$(SYSUSERSDIR)/anonreg.conf $(DESTDIR)$(TMPFILESDIR)/anonreg.conf
	rm -rf $(DESTDIR)$(DOCDIR)
	rm -f $(DESTDIR)$(MANDIR)/man1/anonreg.1 $(DESTDIR)$(MANDIR)/man1/anonreg-clinic.1 $(DESTDIR)$(MANDIR)/man8/anonregd.8
	@echo "kept $(DESTDIR)$(SYSCONFDIR)/anonreg.toml and the state directory"

## Benchmarks (docs/PERFORMANCE.md). Release build; figures are printed and written to
## bench/results/<timestamp>-*.json and .md. Not part of `make test`; targets are reported, never
## asserted. BENCH_ARGS passes options (e.g. BENCH_ARGS="--seconds 10 --connections 1 8 64").
BENCH_ARGS ?=
SCALE_SUBJECTS ?= 1000000
AUDIT_ENTRIES ?= 1000000

## Load over the Unix socket (1, 8 and 64 keep-alive connections) against in-process limits;
## then the pgcrypto peer (issue 16) and one table of both (bench/compare.py); then the fairness
## mode (issue 23): one clinic floods from 256 connections on its own uid while another reads,
## against a flood of GET /v1/health in the same run (needs root for setpriv); then the history
## mode (bench-history below).
FAIRNESS_ARGS ?=
bench: setup
	$(SWIFT) build -c release
	$(CURDIR)/.build/release/anonreg-bench run $(BENCH_ARGS)
	$(CURDIR)/bench/pgcrypto-peer.sh $(PEER_ARGS)
	python3 $(CURDIR)/bench/compare.py
	$(CURDIR)/.build/release/anonreg-bench fairness $(FAIRNESS_ARGS)
	$(CURDIR)/.build/release/anonreg-bench history $(HISTORY_ARGS)
	$(CURDIR)/bench/postgres-nodes.sh $(NODES_ARGS)

## Issue 17: check-ups and status reads on SQLite, on PostgreSQL with one node and with two
## nodes sharing the connections, and the pgcrypto peer, in one session and one table
## (bench/postgres-nodes.sh, bench/nodes-table.py; NODES_ARGS="--seconds 10"). Starts a
## throwaway PostgreSQL 15 cluster of its own; prints a skip line without PostgreSQL 15.
NODES_ARGS ?=
bench-postgres: setup
	$(SWIFT) build -c release
	$(CURDIR)/bench/postgres-nodes.sh $(NODES_ARGS)

## Issue 16's peer alone: PostgreSQL 15 + pgcrypto doing the check-up and the audited status
## read (bench/pgcrypto-peer/*.sql), pgbench at 8 and 64 clients over the Unix socket of a
## throwaway cluster with fsync on (PEER_ARGS="--seconds 10 --subjects 10000 --clients '8 64'").
## Prints a skip line and succeeds without PostgreSQL 15. `make bench` tabulates it against
## anonreg's figures of the same session.
PEER_ARGS ?=
bench-pgcrypto:
	$(CURDIR)/bench/pgcrypto-peer.sh $(PEER_ARGS)

## Status and check-up latency at 1 connection on cases with 1, 50 and 200 check-ups already
## recorded, and the ratio of the longest to the shortest (HISTORY_ARGS="--lengths 1 50 200
## --cases 400 --seconds 5"). About 4 min on 2 cores, most of it recording the 100,400 check-ups.
HISTORY_ARGS ?=
bench-history: setup
	$(SWIFT) build -c release
	$(CURDIR)/.build/release/anonreg-bench history $(HISTORY_ARGS)

## The fairness mode alone.
bench-fairness: setup
	$(SWIFT) build -c release
	$(CURDIR)/.build/release/anonreg-bench fairness $(FAIRNESS_ARGS)

## 1,000,000 subjects (SCALE_SUBJECTS=100000 for a quick check): start, RSS, reads, online rewrap. Minutes.
bench-scale: setup
	$(SWIFT) build -c release
	$(CURDIR)/.build/release/anonreg-bench scale --subjects $(SCALE_SUBJECTS) $(BENCH_ARGS)

## Group commit on a slow disk: an LD_PRELOAD shim (bench/slow-fsync.c) makes every fsync and
## fdatasync FSYNC_DELAY_US longer, in the daemon and in the in-process limits alike.
FSYNC_DELAY_US ?= 2000
bench-slow-disk: setup
	$(SWIFT) build -c release
	cc -O2 -shared -fPIC -o $(CURDIR)/.build/slow-fsync.so $(CURDIR)/bench/slow-fsync.c -ldl
	LD_PRELOAD=$(CURDIR)/.build/slow-fsync.so ANONREG_BENCH_FSYNC_DELAY_US=$(FSYNC_DELAY_US) \
		$(CURDIR)/.build/release/anonreg-bench run --ops checkup status --connections 1 8 64 --no-half-peak $(BENCH_ARGS)

## Issue 6: verify a 1,000,000-entry audit chain in process and offline, and print the rates.
bench-audit: setup
	$(SWIFT) build -c release
	$(CURDIR)/.build/release/anonreg-bench audit --entries $(AUDIT_ENTRIES) $(BENCH_ARGS)

## Issue 21: time the geometric noise sampler against |noise|, bare algorithm and padded (the
## daemon's), NOISE_DRAWS draws per ε (docs/CRYPTO.md §Differential privacy).
NOISE_DRAWS ?= 100000
bench-noise: setup
	$(SWIFT) build -c release --product anonreg-bench
	$(CURDIR)/.build/release/anonreg-bench noise --draws $(NOISE_DRAWS) $(BENCH_ARGS)

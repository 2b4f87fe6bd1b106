# anonreg: the two commands a newcomer needs are `make run` and `make test` (see README.md).
SWIFT ?= swift
STATE_DIR ?= $(CURDIR)/state
BIN := $(CURDIR)/.build/debug

.PHONY: setup build test run clean

setup:
	@./scripts/setup.sh

build: setup
	$(SWIFT) build

## Install what is missing, build, and run every test suite.
test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test

## Install what is missing, build, and start the daemon on ./state.
run: build
	@STATE_DIR="$(STATE_DIR)" BIN="$(BIN)" ./scripts/run-local.sh

clean:
	rm -rf .build

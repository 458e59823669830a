# strata: make run | make test | make bench
SHELL := /bin/bash
GO ?= go
GOBIN := $(shell $(GO) env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)
BIN := bin/strata
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X strata/internal/cli.Version=$(VERSION)
RUN_ADDR ?= 127.0.0.1:5000
RUN_STORAGE ?= $(CURDIR)/.cache/storage

.PHONY: all deps build run test lint unit e2e conformance bench clean

all: build

deps:
	@bash scripts/deps.sh

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/strata

# Start the registry on the bundled offline package set, filesystem storage.
run: deps build
	@mkdir -p $(RUN_STORAGE)
	@echo
	@echo "strata is starting on http://$(RUN_ADDR) (Ctrl-C to stop). In another shell:"
	@echo
	@echo "    podman pull --tls-verify=false $(RUN_ADDR)/shell/hello"
	@echo "    podman run --rm --tls-verify=false $(RUN_ADDR)/shell/hello hello"
	@echo
	exec $(BIN) serve --listen $(RUN_ADDR) --pkgs-path $(CURDIR)/testdata/pkgs \
		--storage-path $(RUN_STORAGE) --log-format text

# Every test: lint, unit and race, end to end with real clients.
test: deps lint
	$(GO) test -race -timeout 25m -count=1 ./...

lint:
	@fmt=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$fmt" ]; then echo "gofmt needed: $$fmt"; exit 1; fi
	$(GO) vet ./...
	staticcheck ./...

bench: deps
	@bash scripts/deps.sh bench
	bash scripts/bench.sh

clean:
	rm -rf bin .cache

# strata: make run | make test | make bench
SHELL := /bin/bash
GO ?= go
# The Go release strata is built and checked with: go.mod's toolchain line.
# A machine's go.env says GOTOOLCHAIN=local, which ignores that line, so it
# is passed on here; the go command fetches that release from the module
# proxy once (about 25 s).
export GOTOOLCHAIN := $(shell sed -n 's/^toolchain //p' go.mod)
GOBIN := $(shell $(GO) env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)
BIN := bin/strata
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X strata/internal/cli.Version=$(VERSION)
RUN_ADDR ?= 127.0.0.1:5000
RUN_STORAGE ?= $(CURDIR)/.cache/storage

.PHONY: all deps deps-run build image run test lint check-pins vulncheck bench clean debian-pkgs

all: build

# What serving needs (Nix, static busybox); `deps` adds the test tools.
deps-run:
	@bash scripts/deps.sh run

deps:
	@bash scripts/deps.sh test

# A static binary (no cgo), so it also runs in strata's own image.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/strata

# strata's own container image, built by strata (examples/strata-image).
image: build
	$(BIN) build --pkgs-path $(CURDIR)/testdata/pkgs -f examples/strata-image/image.nix \
		--output oci:.cache/strata-image --output docker-archive:.cache/strata-image.tar:$(VERSION)

# Start the registries: the bundled offline package set at once, Debian 12's
# python3, git and curl beside it once prepared (scripts/run.sh).
run: deps-run build
	@BIN=$(BIN) RUN_ADDR=$(RUN_ADDR) RUN_STORAGE=$(RUN_STORAGE) DEBIAN_PKGS=$(DEBIAN_PKGS) exec bash scripts/run.sh

# The Debian 12 package set (python3, git, curl, ...) for amd64 and arm64,
# at .cache/debian-pkgs; cached after the first run.
DEBIAN_PKGS ?= $(CURDIR)/.cache/debian-pkgs
debian-pkgs: deps-run
	bash scripts/debian-pkgs.sh $(DEBIAN_PKGS)

# Every test: lint, unit and race, end to end with real clients.
test: deps lint
	$(GO) test -race -timeout 40m -count=1 ./...
	$(GO) test -count=1 -run 'Allocations$$' ./internal/...
	cd test/nixsnapshotter && $(GO) vet ./... && $(GO) test -race -timeout 15m -count=1 ./...

lint: check-pins
	@fmt=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$fmt" ]; then echo "gofmt needed: $$fmt"; exit 1; fi
	@$(GO) mod tidy -diff || { echo "go.mod is not tidy: run go mod tidy"; exit 1; }
	$(GO) vet ./...
	staticcheck ./...
	@bash scripts/vulncheck.sh

# Every pinned module version resolves from the proxy with an empty cache.
check-pins:
	@bash scripts/check-pins.sh

vulncheck:
	@bash scripts/vulncheck.sh

bench: deps
	@bash scripts/deps.sh bench
	bash scripts/bench.sh

clean:
	rm -rf bin .cache

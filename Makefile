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

.PHONY: all deps build image run test lint bench clean debian-pkgs

all: build

deps:
	@bash scripts/deps.sh

# A static binary (no cgo), so it also runs in strata's own image.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/strata

# strata's own container image, built by strata (examples/strata-image).
image: build
	$(BIN) build --pkgs-path $(CURDIR)/testdata/pkgs -f examples/strata-image/image.nix \
		--output oci:.cache/strata-image --output docker-archive:.cache/strata-image.tar:$(VERSION)

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

# Debian 12 packages (python3, git, curl, ...) for amd64 and arm64 as a
# package set at .cache/debian-pkgs; cached after the first run.
DEBIAN_PKGS ?= $(CURDIR)/.cache/debian-pkgs
debian-pkgs: deps
	bash scripts/debian-pkgs.sh $(DEBIAN_PKGS)

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

# vaultsink — the one entry point. `make demo` and `make test` are the quickstart.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN := bin
TOOLS := $(CURDIR)/.tools
export PATH := $(TOOLS):$(PATH)

.PHONY: all build test demo vet fmt clean
all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/vaultsink ./cmd/vaultsink
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/vaultsim ./cmd/vaultsim

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

test: build vet
	$(GO) test -race -count=1 -timeout 15m ./...

clean:
	rm -rf $(BIN) out state demo

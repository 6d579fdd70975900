# vaultsink — the one entry point. The README's quickstart is `make demo` and `make test`.
SHELL := /bin/bash
# Every build, test, benchmark and tool install runs on this Go release, which
# the go command fetches from the module proxy on first use (~76 MB). The
# machine's own Go (GOTOOLCHAIN=local in its go.env) ignores go.mod's
# `toolchain` line, so the setting lives here. go.mod's toolchain line and the
# Dockerfile's builder name the same release (tests check): bump all three.
export GOTOOLCHAIN := go1.27.3
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN := bin
TOOLS := $(CURDIR)/.tools
VERSITYGW_VERSION := v1.8.0
GOVULNCHECK_VERSION := v1.9.0
# Google's ZetaSQL analyzer (GoogleSQL, as BigQuery parses and types it) with
# its Linux server: the BigQuery stand-in checks every statement with it.
# Runs under the machine's Node.js; about 350 MB installed. Keep in step with
# bqtest.ZetaSQLPackage.
ZETASQL_PACKAGE := @fivetrandevelopers/zetasql@1.13.0
# The vulnerability database, as the golang.org/x/vulndb module serves it: the
# only copy the Go module proxy can reach. Bump it to refresh the database.
VULNDB_VERSION := v0.0.0-20261105234957-e22db6528018
export PATH := $(TOOLS):$(PATH)
# Tests find the S3 server here; cgo is needed only by the DuckDB reader used in tests.
export VAULTSINK_TOOLS := $(TOOLS)
export VAULTSINK_VULNDB := $(TOOLS)/vulndb-$(VULNDB_VERSION)
export CGO_ENABLED ?= 1
# The Go tools in .tools/ are rebuilt when the toolchain changes: each install
# rule depends on this stamp, which is newer than every binary built before it.
TOOLCHAIN_STAMP := $(TOOLS)/.built-with-$(GOTOOLCHAIN)

.PHONY: all build test test-long chaos bench demo vet tools systemd-analyze valgrind vulncheck fuzz clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/vaultsink ./cmd/vaultsink
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/vaultsim ./cmd/vaultsim

# Everything the tests need that is not a Go module import: the real S3 server,
# ZetaSQL for the BigQuery stand-in, and systemd-analyze (Debian package
# systemd) to verify the unit files.
tools: $(TOOLS)/versitygw $(TOOLS)/zetasql/.installed $(TOOLS)/govulncheck $(VAULTSINK_VULNDB) systemd-analyze

$(TOOLCHAIN_STAMP):
	@mkdir -p $(TOOLS)
	@rm -f $(TOOLS)/.built-with-*
	@touch $@

# govulncheck with an offline database built from the vulndb module. The
# database does not depend on the toolchain: a new indexdb does not rebuild it.
$(TOOLS)/govulncheck: $(TOOLCHAIN_STAMP)
	GOBIN=$(TOOLS) $(GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION)

$(TOOLS)/indexdb: $(TOOLCHAIN_STAMP)
	GOBIN=$(TOOLS) $(GO) install golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION)

$(VAULTSINK_VULNDB): | $(TOOLS)/indexdb
	rm -rf $@.tmp
	$(TOOLS)/indexdb -vulns "$$($(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')/data/osv" -out $@.tmp
	mv $@.tmp $@

vulncheck: $(TOOLS)/govulncheck $(VAULTSINK_VULNDB)
	$(TOOLS)/govulncheck -db file://$(VAULTSINK_VULNDB) ./...


# $(call apt_tool,command,Debian package,what it is for,what happens without it)
apt_tool = @command -v $(1) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing the Debian package $(2) ($(3))"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(2) >/dev/null; \
	  else echo "note: $(1) not found and cannot install it (not root or no apt-get); $(4)"; fi; }

systemd-analyze:
	$(call apt_tool,systemd-analyze,systemd,for systemd-analyze verify,the unit-file test will skip)

# valgrind's cachegrind counts the instructions per event in `make bench`.
valgrind:
	$(call apt_tool,valgrind,valgrind,instruction counts in make bench,the report will say so)

$(TOOLS)/versitygw: $(TOOLCHAIN_STAMP)
	@echo "installing versitygw $(VERSITYGW_VERSION) into $(TOOLS) with $(GOTOOLCHAIN) (first time and after a toolchain change, ~2 minutes)"
	GOBIN=$(TOOLS) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

# The npm package, into .tools/zetasql with the machine's npm. Without Node.js
# the BigQuery tests skip, saying so; the stamp names the package so that a
# new version reinstalls.
$(TOOLS)/zetasql/.installed: Makefile
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
	  echo "note: node or npm not found: ZetaSQL ($(ZETASQL_PACKAGE)) is not installed and the BigQuery stand-in tests will skip (Debian: apt-get install nodejs npm)"; \
	else \
	  echo "installing $(ZETASQL_PACKAGE) into $(TOOLS)/zetasql (first time, ~350 MB)"; \
	  mkdir -p $(TOOLS)/zetasql && \
	  npm install --prefix $(TOOLS)/zetasql --no-audit --no-fund --no-save --loglevel=error $(ZETASQL_PACKAGE) && \
	  echo "$(ZETASQL_PACKAGE)" > $@; \
	fi

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# The bounded suite: every package with -race, plus a short chaos run.
test: build tools vet
	$(GO) test -race -count=1 -timeout 20m ./...

# Long soak and chaos tests (>= 100 kills).
test-long chaos: build tools
	VAULTSINK_CHAOS_KILLS=100 $(GO) test -count=1 -timeout 60m -run 'Chaos' -v ./test/chaos/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodePage -fuzztime 60s ./source/
	$(GO) test -run '^$$' -fuzz FuzzFlatObject -fuzztime 60s ./source/
	$(GO) test -run '^$$' -fuzz FuzzTimeText -fuzztime 60s ./source/
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./config/

bench: build valgrind
	$(GO) run ./bench/cmd/benchreport -out bench

demo: build
	@bash deploy/demo/demo.sh

clean:
	rm -rf $(BIN) demo-out

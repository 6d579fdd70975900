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

.PHONY: all build test test-long chaos bench demo vet tools systemd-analyze valgrind nodejs cxx vulncheck fuzz clean architecture

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/vaultsink ./cmd/vaultsink
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/vaultsim ./cmd/vaultsim

# Everything the tests need that is not a Go module import: the real S3 server,
# ZetaSQL for the BigQuery stand-in, systemd-analyze (Debian package
# systemd) to verify the unit files, and promtool for the alert rules.
tools: cxx $(TOOLS)/versitygw $(TOOLS)/zetasql/.installed $(TOOLS)/govulncheck $(VAULTSINK_VULNDB) systemd-analyze $(TOOLS)/promtool

# promtool checks and unit-tests deploy/prometheus: the one binary (48 MB) out
# of Debian's prometheus package (19 MB download), which installed would also
# start a Prometheus server. Without it the rule tests fail under make.
$(TOOLS)/promtool:
	@mkdir -p $@.tmp && cd $@.tmp && { apt-get download prometheus >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get download prometheus >/dev/null; }; } && \
	  dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool && mv usr/bin/promtool $@ || \
	  echo "note: could not take promtool from Debian's prometheus package (apt-get download, dpkg-deb); the alert-rule tests will fail"; \
	  rm -rf $@.tmp

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

# A C and C++ compiler: DuckDB, the tests' independent Parquet reader, is a
# cgo package over a C++ library. The shipped binaries need neither.
cxx:
	$(call apt_tool,g++,g++,DuckDB's cgo driver in the tests,the packages that read Parquet back with DuckDB will not build)

# Node.js and npm run Google's ZetaSQL analyzer for the BigQuery stand-in.
nodejs:
	$(call apt_tool,npm,nodejs npm,ZetaSQL for the BigQuery stand-in,the BigQuery stand-in tests will skip)

# valgrind's cachegrind counts the instructions per event in `make bench`.
valgrind:
	$(call apt_tool,valgrind,valgrind,instruction counts in make bench,the report will say so)

$(TOOLS)/versitygw: $(TOOLCHAIN_STAMP)
	@echo "installing versitygw $(VERSITYGW_VERSION) into $(TOOLS) with $(GOTOOLCHAIN) (first time and after a toolchain change, ~2 minutes)"
	GOBIN=$(TOOLS) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

# The npm package, into .tools/zetasql with the machine's npm. Without Node.js
# the BigQuery tests skip, saying so; the stamp names the package so that a
# new version reinstalls.
$(TOOLS)/zetasql/.installed: Makefile | nodejs
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

# Release: static binaries (linux, darwin; amd64, arm64), an SPDX SBOM per
# binary, the multi-arch OCI image (dist/oci, an OCI layout, and
# dist/vaultsink-$(VERSION)-oci.tar) and SHA256SUMS, all into $(DIST), built
# by tools/release with go-containerregistry: no Docker engine. The image's CA
# bundle is Debian's ca-certificates; the same commit, Go release and bundle
# give the same digests. Tag the commit first (git tag v0.2.0) for a clean
# version.
.PHONY: release image-push ca-certificates
DIST := dist
CA_BUNDLE := /etc/ssl/certs/ca-certificates.crt

ca-certificates:
	$(call apt_tool,update-ca-certificates,ca-certificates,the CA bundle of the release image,make release fails without $(CA_BUNDLE))

release: ca-certificates
	rm -rf $(DIST)
	$(GO) run ./tools/release dist -out $(DIST) -version $(VERSION) -certs $(CA_BUNDLE) \
	  -certs-origin "$$(dpkg-query -W -f='Debian ca-certificates $${Version}' ca-certificates 2>/dev/null)"

# Push the image index of `make release` (every platform) with the
# credentials of `docker login` or a credential helper (~/.docker/config.json;
# no Docker engine needed): make image-push IMAGE=ghcr.io/you/vaultsink:v0.2.0
image-push:
	@[ -n "$(IMAGE)" ] || { echo "usage: make image-push IMAGE=REGISTRY/REPO:TAG (after make release)"; exit 2; }
	$(GO) run ./tools/release push -layout $(DIST)/oci -image $(IMAGE)

clean:
	rm -rf $(BIN) demo-out $(DIST)

# Regenerate the import graph in docs/architecture.md from the tree
# (internal/archtest keeps it true and the layers in order).
architecture:
	$(GO) test ./internal/archtest/ -run TestGraphDocumented -update

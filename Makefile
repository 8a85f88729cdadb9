# SikkerGuard — build, test and install.
# `make help` lists the targets. CI (.ci/run) runs `make check` in a pristine Debian
# (`make check-fresh`), then the host-only end-to-end test and `make race`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# sudo's secure_path usually lacks /usr/local/go/bin, where Go is installed on
# Debian machines without a packaged toolchain.
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
GOFLAGS ?= -trimpath
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/sikkerapi/sikkerguard/internal/version.Version=$(VERSION)
BIN := bin

PREFIX ?= /usr
SYSCONFDIR ?= /etc
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
# dbus-daemon reads /usr/share/dbus-1/system.d and /etc/dbus-1/system.d
# only: with PREFIX=/usr/local, pass DBUSPOLICYDIR=/etc/dbus-1/system.d.
DBUSPOLICYDIR ?= $(PREFIX)/share/dbus-1/system.d
DESTDIR ?=

# Debian packages the daemon, the demo and the tests run; installed by
# `check`/`demo` when missing (command, or file for a path, → package).
# ping warms up the test labs' links, sysctl turns on forwarding in them,
# busctl and setpriv drive the bus tests, gcc links the hardened binaries of
# `make deb` (the end-to-end test builds the package) and needs the C
# library's headers, since with gcc present Go builds cgo too, and the CA
# certificates let Go download the modules over HTTPS.
# internal/testnet's prerequisite check names the same packages (a test
# keeps the two in step).
DEB_DEPS := nft:nftables iptables:iptables ipset:ipset ip:iproute2 dbus-daemon:dbus \
	ping:iputils-ping sysctl:procps busctl:systemd setpriv:util-linux gcc:gcc \
	/usr/include/stdint.h:libc6-dev /etc/ssl/certs/ca-certificates.crt:ca-certificates \
	rpmbuild:rpm

CMDS := sikkerguard sikkerctl sikkerapi-mock

.PHONY: help
help: ## Show this help
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  \033[1m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# Programs `make bench` runs besides DEB_DEPS: curl (the seed's fetch, the
# reference of the cron run), GNU time, which measures peak memory (package
# "time"; the shell keyword of the same name cannot), and iperf3, which
# streams TCP through the packet section's lab.
BENCH_DEPS := curl:curl /usr/bin/time:time iperf3:iperf3

# install-missing installs the Debian packages of a command:package list
# whose command (or file, for a path) is missing; it needs root for that.
define install-missing
	@missing=""; for pair in $(1); do \
		cmd=$${pair%%:*}; pkg=$${pair#*:}; \
		case $$cmd in \
		/*) [ -e $$cmd ] || missing="$$missing $$pkg" ;; \
		*) command -v $$cmd >/dev/null 2>&1 || [ -x /usr/sbin/$$cmd ] || [ -x /sbin/$$cmd ] || missing="$$missing $$pkg" ;; \
		esac; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "missing packages:$$missing — run as root (sudo make ...) to install them" >&2; exit 1; fi; \
		echo "installing:$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

.PHONY: deps
deps: ## Install the missing Debian packages that make check and make demo run (DEB_DEPS); needs root
	$(call install-missing,$(DEB_DEPS))
	@test -x "$(GO)" || command -v "$(GO)" >/dev/null || { echo "Go toolchain not found (looked for go on PATH and /usr/local/go/bin/go)" >&2; exit 1; }

.PHONY: build
build: ## Build sikkerguard, sikkerctl and sikkerapi-mock into bin/
	@mkdir -p $(BIN)
	$(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

.PHONY: demo
demo: deps build ## Show it working in throwaway network namespaces against the bundled mock SikkerAPI (root)
	BIN=$(BIN) bash docs/demo/run.sh

.PHONY: test
test: ## Run unit tests (kernel tests skip unless root)
	$(GO) test -count=1 ./...

.PHONY: fmt-check
fmt-check: ## Fail when gofmt would change a file
	@out=$$($(GO)fmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: vet
vet: ## go vet every package
	$(GO) vet ./...

# PKGS and RUN narrow make check and make check-fresh while working on one
# part, e.g. `sudo make check PKGS=./internal/nft/... RUN=TestAtomic`.
PKGS ?= ./...
RUN ?=

.PHONY: check
check: deps fmt-check vet ## Install what is missing, then gofmt, vet and every test incl. fuzz seeds and netns tests (root)
	@if [ "$$(id -u)" != 0 ]; then echo "make check runs network-namespace tests and needs root: sudo make check" >&2; exit 1; fi
	SIKKER_NETNS_TESTS=1 $(GO) test -count=1 -timeout 30m $(if $(RUN),-run '$(RUN)') $(PKGS)
	@echo "make check: all tests passed"

.PHONY: check-fresh
check-fresh: ## make check inside a pristine Debian 12 (debootstrap minbase, cached), as a fresh machine runs it (root, ~7 min)
	bash .ci/check-fresh.sh PKGS='$(PKGS)' RUN='$(RUN)'

.PHONY: check-host
check-host: deps ## The test make check-fresh leaves to the host: the systemd-nspawn end-to-end test (root)
	@if [ "$$(id -u)" != 0 ]; then echo "the end-to-end test boots a container and needs root: sudo make check-host" >&2; exit 1; fi
	SIKKER_NETNS_TESTS=1 $(GO) test -count=1 -timeout 20m -run '^TestSystemd$$' ./internal/e2e

.PHONY: race
race: ## Unit tests under the race detector
	$(GO) test -count=1 -race ./...

.PHONY: fuzz
fuzz: ## Run every Fuzz* target of every package for FUZZTIME each (default 30s)
	@for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for t in $$($(GO) test -list '^Fuzz' $$dir | grep '^Fuzz'); do \
			echo "fuzz $$dir $$t"; \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $${FUZZTIME:-30s} $$dir || exit 1; \
		done; \
	done

# BENCH narrows make bench to some of its sections, in this order: backends
# (the firewall backends alone), once (the cron run), daemon (start-up,
# reload, pull, memory), scale (100 k, 1 M, 5 M entries), packet (the cost
# per packet at each hook, conntrack, unlisted traffic with and without a
# monitor feed's objects, a TCP stream); e.g.
# `sudo make bench BENCH=once,daemon`. BENCH_RUNS is how many times each case
# runs (the median is shown). The address-math Go benchmarks run with all.
BENCH ?= all
BENCH_RUNS ?= 3

.PHONY: bench
bench: deps build ## Benchmarks against the reference tools: backends, --once, the daemon, scale, the packet path (root, ~25 min; BENCH=once,daemon narrows)
	@if [ "$$(id -u)" != 0 ]; then echo "the benchmark loads lists into throwaway network namespaces and needs root: sudo make bench" >&2; exit 1; fi
	$(call install-missing,$(BENCH_DEPS))
	$(if $(filter all,$(BENCH)),$(GO) test -run '^$$' -bench . -benchmem ./internal/ipnet)
	$(GO) build $(GOFLAGS) -o $(BIN)/sikkerbench ./cmd/sikkerbench
	$(BIN)/sikkerbench -bench $(BENCH) -runs $(BENCH_RUNS) -bin $(BIN) -sizes 100000,1000000 -mix single,cidr

.PHONY: install
install: build ## Install binaries, unit, D-Bus policy, config, man pages and docs under DESTDIR/PREFIX
	install -Dm0755 $(BIN)/sikkerguard $(DESTDIR)$(PREFIX)/sbin/sikkerguard
	install -Dm0755 $(BIN)/sikkerctl $(DESTDIR)$(PREFIX)/bin/sikkerctl
	@# The unit names the daemon by its installed path.
	install -d -m0755 $(DESTDIR)$(SYSTEMDUNITDIR)
	sed 's|/usr/sbin/sikkerguard|$(PREFIX)/sbin/sikkerguard|g' systemd/sikkerguard.service >$(DESTDIR)$(SYSTEMDUNITDIR)/sikkerguard.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/sikkerguard.service
	install -Dm0644 dbus/com.sikkerapi.SikkerGuard1.conf $(DESTDIR)$(DBUSPOLICYDIR)/com.sikkerapi.SikkerGuard1.conf
	install -Dm0644 dbus/com.sikkerapi.SikkerGuard1.xml $(DESTDIR)$(PREFIX)/share/dbus-1/interfaces/com.sikkerapi.SikkerGuard1.xml
	install -Dm0644 docs/man/sikkerguard.8 $(DESTDIR)$(PREFIX)/share/man/man8/sikkerguard.8
	install -Dm0644 docs/man/sikkerctl.8 $(DESTDIR)$(PREFIX)/share/man/man8/sikkerctl.8
	install -Dm0644 docs/man/sikkerguard.yaml.5 $(DESTDIR)$(PREFIX)/share/man/man5/sikkerguard.yaml.5
	install -Dm0644 cmd/sikkerctl/sikkerctl.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/sikkerctl
	install -Dm0644 -t $(DESTDIR)$(PREFIX)/share/doc/sikkerguard README.md docs/dbus.md configs/sikkerguard.yaml
	install -Dm0644 docs/grafana/sikkerguard.json $(DESTDIR)$(PREFIX)/share/doc/sikkerguard/grafana/sikkerguard.json
	install -d -m0755 $(DESTDIR)$(SYSCONFDIR)/sikkerguard
	@# An existing configuration is the administrator's: never overwrite it.
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/sikkerguard/sikkerguard.yaml ]; then \
		echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/sikkerguard/sikkerguard.yaml"; \
	else \
		install -m0644 configs/sikkerguard.yaml $(DESTDIR)$(SYSCONFDIR)/sikkerguard/sikkerguard.yaml; \
	fi

# The maintainer named by both packages (.deb Maintainer:, .rpm Packager:
# and changelogs): the project, not whoever made the last commit.
MAINTAINER := SikkerGuard Maintainers <maintainers@sikkerapi.com>

# Debian package: version from git describe made Debian-safe, architecture
# from dpkg.
ifndef DEB_VERSION
DEB_VERSION := $(shell sh systemd/debian/version.sh)
endif
DEB_ARCH ?= $(shell dpkg --print-architecture 2>/dev/null || $(GO) env GOARCH)
DEB_ROOT := dist/deb-root
# Debian's hardening flags for the packaged binaries: PIE, full RELRO.
DEB_GOFLAGS ?= $(GOFLAGS) -buildmode=pie
DEB_LDFLAGS ?= $(LDFLAGS) -linkmode=external -extldflags=-Wl,-z,relro,-z,now
DEB_FILE = dist/sikkerguard_$(DEB_VERSION)_$(DEB_ARCH).deb

.PHONY: deb
deb: ## Build dist/sikkerguard_VERSION_ARCH.deb with dpkg-deb
	rm -rf $(DEB_ROOT)
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/$(DEB_ROOT) PREFIX=/usr SYSCONFDIR=/etc \
		SYSTEMDUNITDIR=/lib/systemd/system GOFLAGS='$(DEB_GOFLAGS)' LDFLAGS='$(DEB_LDFLAGS)'
	bash systemd/debian/build-deb.sh $(DEB_ROOT) '$(DEB_VERSION)' '$(DEB_ARCH)' '$(MAINTAINER)' dist
	rm -rf $(DEB_ROOT)

# RPM package for RPM distributions, built on Debian with rpmbuild from the
# same installed tree as the .deb; the unit goes where those distributions
# keep it.
RPM_ROOT := dist/rpm-root

.PHONY: rpm
rpm: ## Build dist/sikkerguard-VERSION-1.ARCH.rpm with rpmbuild (Debian package rpm, installed when missing; root)
	@command -v rpmbuild >/dev/null || { \
		if [ "$$(id -u)" != 0 ]; then echo "rpmbuild missing — run as root (sudo make rpm) to install Debian's rpm package" >&2; exit 1; fi; \
		export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends rpm; }
	rm -rf $(RPM_ROOT)
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/$(RPM_ROOT) PREFIX=/usr SYSCONFDIR=/etc \
		SYSTEMDUNITDIR=/usr/lib/systemd/system GOFLAGS='$(DEB_GOFLAGS)' LDFLAGS='$(DEB_LDFLAGS)'
	bash systemd/build-rpm.sh $(RPM_ROOT) '$(DEB_VERSION)' '$(MAINTAINER)' dist
	rm -rf $(RPM_ROOT)

.PHONY: lint-deb
lint-deb: deb ## Build the .deb and check it with lintian (installed when missing; root)
	@command -v lintian >/dev/null || { \
		if [ "$$(id -u)" != 0 ]; then echo "lintian missing — run as root (sudo make lint-deb) to install it" >&2; exit 1; fi; \
		export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends lintian; }
	lintian --fail-on warning,error --info $(DEB_FILE)

.PHONY: clean
clean: ## Remove build output
	rm -rf $(BIN) dist

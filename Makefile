# smtpcap — build, run on the bundled capture, test, benchmark, document and package.
SWIFT   ?= swift
PREFIX  ?= /usr/local
BIN     := .build/release/smtpcap
CAPTURE ?= captures/default.pcap

# Debian packages: libpcap, OpenSSL (probe's TLS client) and zlib (-r FILE.gz) to build; the
# rest for tests (live capture, tshark as an oracle, probe's namespaces: dnsmasq, nftables,
# openssl, dig).
BUILD_DEBS := libpcap-dev libssl-dev zlib1g-dev pkg-config
TEST_DEBS  := $(BUILD_DEBS) tcpdump tshark python3 python3-pip python3-aiosmtpd iproute2 dnsmasq-base nftables openssl ethtool util-linux bind9-dnsutils
# `make deb`: dpkg-shlibdeps (dpkg-dev), strip (binutils), the package's checker.
DEB_DEBS   := dpkg-dev binutils lintian

.PHONY: all build run test check golden install uninstall deps test-deps bench bench-live fuzz-build fuzz-smoke asan-test tsan-test clean
.PHONY: static-build completions man deb deb-deps

all: build

# Installs what is missing (as root on Debian); does nothing when all is there.
define ensure_debs
	@missing=""; for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to install:$$missing" >&2; exit 2; fi; \
	  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

deps:
	$(call ensure_debs,$(BUILD_DEBS))

# The test oracles from PyPI (Suricata's EVE schema checker, parsedmarc's TLS-RPT parser, the
# Community ID reference): installed into the python3 the tests run, when missing.
test-deps:
	$(call ensure_debs,$(TEST_DEBS))
	Tests/Scripts/pip-deps.sh

build: deps
	$(SWIFT) build -c release --product smtpcap

# Analyzes the bundled capture. Exit status 1 means "findings were reported": that is the point.
run: build
	@$(BIN) -r $(CAPTURE); status=$$?; [ $$status -le 1 ] || exit $$status

test: test-deps check
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# The layout rules (README, "How it is built"): file sizes, declared imports, pointer code
# only in the named kernels.
check:
	python3 .ci/check-layout.py

# Rewrites the golden outputs (captures/golden) from the release build: only for a change of
# output that is meant, said in its commit.
golden: build
	captures/golden/make-golden.sh $(BIN)

# zsh reads Debian's vendor-completions only under /usr; under another prefix (/usr/local) its
# site-functions directory is the one in zsh's default fpath. bash-completion and fish look
# under /usr/local/share as well as /usr/share.
zsh_compdir = $(1)/share/zsh/$(if $(filter /usr,$(1)),vendor-completions,site-functions)

# Installs a binary, the man page and the completions: $(call install_tree,BIN,DESTDIR,PREFIX).
# The documentation is the checked-in one (`make man`): installing runs nothing that was built.
define install_tree
	install -D -m 0755 $(1) $(2)$(3)/bin/smtpcap
	install -d $(2)$(3)/share/man/man1
	gzip -9n < doc/smtpcap.1 > $(2)$(3)/share/man/man1/smtpcap.1.gz
	chmod 0644 $(2)$(3)/share/man/man1/smtpcap.1.gz
	install -D -m 0644 doc/completions/smtpcap.bash $(2)$(3)/share/bash-completion/completions/smtpcap
	install -D -m 0644 doc/completions/_smtpcap $(2)$(call zsh_compdir,$(3))/_smtpcap
	install -D -m 0644 doc/completions/smtpcap.fish $(2)$(3)/share/fish/vendor_completions.d/smtpcap.fish
endef

install: build
	$(call install_tree,$(BIN),$(DESTDIR),$(PREFIX))

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/smtpcap $(DESTDIR)$(PREFIX)/share/man/man1/smtpcap.1.gz \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions/smtpcap $(DESTDIR)$(call zsh_compdir,$(PREFIX))/_smtpcap \
	  $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/smtpcap.fish

# Packaging builds in a scratch path of their own: they never wait for or disturb `make build`'s
# .build, and their binary is linked with the Swift runtime and Foundation inside
# (--static-swift-stdlib) and without SwiftPM's $ORIGIN RUNPATH (--disable-local-rpath), so that
# it runs where no Swift toolchain is installed; and with BIND_NOW, as Debian's hardening
# flags would (relro and PIE are the defaults). generate-manual is swift-argument-parser's own
# man page generator, built from the package's checkout like any of its targets (the package's
# `plugin generate-manual` does the same but rebuilds every product without these flags). Both
# builds run in one recipe: never two builds in one scratch path at once.
PKG_SCRATCH     := .build-deb
PKG_BIN         := $(PKG_SCRATCH)/release/smtpcap
GENERATE_MANUAL := $(PKG_SCRATCH)/debug/generate-manual
# The release date, in the man page and the package's changelog. Not the clock nor the last
# commit's date (which changes when the regenerated page is committed): `make man` on a clean
# tree writes what is checked in. Set it when the version changes.
MAN_DATE        := $(shell cat doc/man/date)
VERSION          = $(shell sed -n 's/^let smtpcapVersion = "\(.*\)"$$/\1/p' Sources/smtpcap/Version.swift)
DEB              = dist/smtpcap_$(VERSION)_$(shell dpkg --print-architecture).deb

static-build: deps
	$(SWIFT) build -c release --product smtpcap --scratch-path $(PKG_SCRATCH) --static-swift-stdlib --disable-local-rpath \
	  -Xlinker -z -Xlinker now
	$(SWIFT) build --product generate-manual --scratch-path $(PKG_SCRATCH)

# The shell completions, checked in like the man page: installing needs no built binary to run,
# and a change of options shows in review. Regenerated with the man page. A completion file is
# sourced, not run: no #! line (lintian's bash-completion-with-hashbang).
completions: static-build
	@mkdir -p doc/completions
	$(PKG_BIN) --generate-completion-script bash > doc/completions/smtpcap.bash
	sed -i '1{/^#!/d}' doc/completions/smtpcap.bash
	$(PKG_BIN) --generate-completion-script zsh > doc/completions/_smtpcap
	$(PKG_BIN) --generate-completion-script fish > doc/completions/smtpcap.fish

# doc/smtpcap.1: the options and subcommands from the argument definitions, the other sections
# from doc/man/*.mdoc. Rerun after changing an option or a finding code, and commit the result.
man: completions
	packaging/make-man.sh $(PKG_BIN) $(GENERATE_MANUAL) $(MAN_DATE) doc/smtpcap.1

deb-deps:
	$(call ensure_debs,$(DEB_DEBS))

# dist/smtpcap_<version>_<arch>.deb (version from Sources/smtpcap/Version.swift), checked by
# lintian: errors fail the build.
deb: deb-deps man
	rm -rf $(PKG_SCRATCH)/pkg
	$(call install_tree,$(PKG_BIN),$(PKG_SCRATCH)/pkg/debian/smtpcap,/usr)
	packaging/build-deb.sh $(PKG_SCRATCH)/pkg $(VERSION) $(MAN_DATE) $(DEB)
	@if command -v lintian >/dev/null; then echo "lintian $(DEB)"; lintian --fail-on error $(DEB); fi
	@ls -l $(DEB)

# The benchmark (bench/README.md): the C libpcap floor vs smtpcap vs tshark on a generated
# capture, with the counts checked against the generator; then hostile captures' memory.
bench: build
	bench/run.sh
	bench/run.sh hostile
	bench/run.sh allocs

# Live capture at rising replay rates over a veth pair (root, tcpreplay): bench/run.sh live.
bench-live: build
	@dpkg-query -W -f='$${Status}' tcpreplay 2>/dev/null | grep -q "ok installed" || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tcpreplay >/dev/null)
	bench/run.sh live

# The whole test suite under AddressSanitizer and under ThreadSanitizer, each in its own scratch
# path (the end-to-end tests run the sanitized smtpcap binary built beside them).
asan-test: test-deps
	$(SWIFT) build --build-tests --scratch-path .build-asan -Xswiftc -sanitize=address
	ASAN_OPTIONS=detect_leaks=0 $(SWIFT) test --skip-build --scratch-path .build-asan

tsan-test: test-deps
	$(SWIFT) build --build-tests --scratch-path .build-tsan -Xswiftc -sanitize=thread
	TSAN_OPTIONS=halt_on_error=1 $(SWIFT) test --skip-build --scratch-path .build-tsan

clean:
	rm -rf .build .build-fuzz .build-asan .build-tsan .build-deb dist

# Fuzzing: one libFuzzer harness per parser layer, built with AddressSanitizer into its own
# scratch path (FUZZ_SCRATCH=... on the command line for another). fuzz-smoke runs each for
# FUZZ_SECONDS on seeds cut from captures/.
FUZZ_SCRATCH := .build-fuzz
FUZZ_BIN     := $(FUZZ_SCRATCH)/debug/smtpcap-fuzz
FUZZ_SECONDS ?= 20
FUZZ_TARGETS := decode ipframes reassembly smtp tls pcap pcapng gzip dns

fuzz-build: deps
	$(SWIFT) build --product smtpcap-fuzz --scratch-path $(FUZZ_SCRATCH) \
	  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING

fuzz-smoke: fuzz-build
	@rm -rf $(FUZZ_SCRATCH)/seeds && python3 Fuzz/make-seeds.py captures $(FUZZ_SCRATCH)/seeds
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_SCRATCH)/corpus/$$t; \
	  echo "fuzz $$t: $(FUZZ_SECONDS)s"; \
	  SMTPCAP_FUZZ_TARGET=$$t $(FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -max_len=16384 \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ_SCRATCH)/crash-$$t- \
	    $(FUZZ_SCRATCH)/corpus/$$t $(FUZZ_SCRATCH)/seeds/$$t 2>&1 | grep -E "^(Done|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)" ; \
	  if ls $(FUZZ_SCRATCH)/crash-$$t-* >/dev/null 2>&1; then echo "fuzz $$t found a crash: $$(ls $(FUZZ_SCRATCH)/crash-$$t-*)"; exit 1; fi; \
	done

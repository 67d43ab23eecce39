# smtpcap — build, run on the bundled capture, test, benchmark.
SWIFT   ?= swift
PREFIX  ?= /usr/local
BIN     := .build/release/smtpcap
CAPTURE ?= captures/default.pcap

# Debian packages: libpcap and OpenSSL (probe's TLS client) to build; the rest for tests (live
# capture, tshark as an oracle, probe's namespaces: dnsmasq, nftables, openssl, dig).
BUILD_DEBS := libpcap-dev libssl-dev pkg-config
TEST_DEBS  := $(BUILD_DEBS) tcpdump tshark python3 python3-aiosmtpd iproute2 dnsmasq-base nftables openssl ethtool util-linux bind9-dnsutils

.PHONY: all build run test check golden install deps test-deps bench bench-live fuzz-build fuzz-smoke asan-test tsan-test clean

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

test-deps:
	$(call ensure_debs,$(TEST_DEBS))

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

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/smtpcap

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
	rm -rf .build .build-fuzz .build-asan .build-tsan

# Fuzzing: one libFuzzer harness per parser layer, built with AddressSanitizer into its own
# scratch path (FUZZ_SCRATCH=... on the command line for another). fuzz-smoke runs each for
# FUZZ_SECONDS on seeds cut from captures/.
FUZZ_SCRATCH := .build-fuzz
FUZZ_BIN     := $(FUZZ_SCRATCH)/debug/smtpcap-fuzz
FUZZ_SECONDS ?= 20
FUZZ_TARGETS := decode ipframes reassembly smtp tls pcap pcapng dns

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

# recstream: the two commands of the README, and a few more.
#   make demo   installs what is missing, builds, runs the quickstart A/B scenario
#   make test   installs what is missing, runs the whole test suite
SWIFT ?= swift
APT_PACKAGES := librdkafka-dev libjemalloc-dev pkg-config
# The tests also run the README's walkthroughs, which use kcat.
test: APT_PACKAGES += kcat

.PHONY: deps demo test bench schema fuzz clean

# Installs the Debian packages that are missing (as root, or through sudo).
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: deps
	$(SWIFT) build -c release --product recstream
	.build/release/recstream run scenarios/quickstart.json --out out/quickstart

# The command line's contract runs on the binary users run (the quickstart runs several
# times there: 4 s each in release, 40 s in debug).
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test
	$(SWIFT) build -c release --product recstream
	bash Tests/cli/cli-tests.sh .build/release/recstream .build/debug/recstream-fuzz

bench: deps
	$(SWIFT) build -c release --product recstream
	.build/release/recstream bench kafka
	.build/release/recstream bench models
	.build/release/recstream bench population
	.build/release/recstream bench wire
	.build/release/recstream bench sparc
	.build/release/recstream bench poly
	.build/release/recstream bench attach
	.build/release/recstream bench e2e

# libFuzzer over every input attach mode reads from outside (Tests/Fuzz): each target runs
# FUZZ_SECONDS from its seeds and the saved regressions; a crash leaves its input in
# .fuzz/TARGET/crash-* (save it under Tests/Fuzz/regressions/TARGET once fixed). Leak
# detection is off: LeakSanitizer cannot follow Swift's enum payload pointers (their spare
# bits hold the case), so it reports the scenario schema's statics as leaks; a harness
# that grows memory per input still fails on -malloc_limit_mb and -rss_limit_mb.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= wire json mapping update trainer-checkpoint checkpoint open-update open-checkpoint
fuzz: deps
	$(SWIFT) build --build-tests
	$(SWIFT) build -c release --product recstream-fuzz --build-path .build-fuzz \
	  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING
	rm -rf .fuzz/seeds && .build/debug/recstream-fuzz seed .fuzz/seeds
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p .fuzz/$$t/corpus && cp -n .fuzz/seeds/$$t/* .fuzz/$$t/corpus/ 2>/dev/null; \
	  echo "fuzz $$t: $(FUZZ_SECONDS) s"; \
	  ( cd .fuzz/$$t && ASAN_OPTIONS=detect_leaks=0 RECSTREAM_FUZZ_TARGET=$$t ../../.build-fuzz/release/recstream-fuzz \
	      -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -rss_limit_mb=4096 -malloc_limit_mb=1024 -detect_leaks=0 \
	      corpus ../../Tests/Fuzz/regressions/$$t ) \
	    >.fuzz/$$t.log 2>&1 || { tail -40 .fuzz/$$t.log; exit 1; }; \
	  grep -E "stat::number_of_executed_units|stat::average_exec_per_sec" .fuzz/$$t.log; \
	done

# Regenerates scenarios/schema.json after a change to the scenario schema.
schema:
	$(SWIFT) run recstream schema > scenarios/schema.json

clean:
	rm -rf .build .build-fuzz .fuzz out

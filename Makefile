# recstream: the two commands of the README, and a few more.
#   make demo   installs what is missing, builds, runs the quickstart A/B scenario
#   make test   installs what is missing, runs the whole test suite
SWIFT ?= swift
APT_PACKAGES := librdkafka-dev libjemalloc-dev pkg-config

.PHONY: deps demo test bench schema clean

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

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test
	bash Tests/cli/cli-tests.sh .build/debug/recstream

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

# Regenerates scenarios/schema.json after a change to the scenario schema.
schema:
	$(SWIFT) run recstream schema > scenarios/schema.json

clean:
	rm -rf .build out

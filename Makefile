# `make demo` and `make test` do all the set-up themselves on a fresh machine.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

CHROMIUM := /usr/bin/chromium

.PHONY: install demo demo-text test test-fast test-containers bench lint clean postgresql

install: $(VENV)/.installed

# torch first, pinned: that takes the CPU wheel; a loose requirement could pull CUDA builds.
# ISLP ships the demo's real data; --no-deps, because its own dependencies are heavy and unused.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps islp==0.6.0
	touch $@

demo: install
	$(BIN)/sangsaeng demo

# The text demo: a startup's pretrained MiniLM + its own head, fine-tuned with DP on three
# partners' private product reviews; ends with the base → improved receipt.
demo-text: install
	$(BIN)/sangsaeng demo --task sangsaeng/demo/reviews.toml --workdir .sangsaeng-demo-text

# Everything: unit, integration (real HTTP servers, real Flower processes, a real PostgreSQL
# server) and end-to-end.
test: install $(CHROMIUM) postgresql
	$(BIN)/pytest

# The inner loop: no processes, no network.
test-fast: install
	$(BIN)/pytest -m unit -q

# The container images, built (deploy/build-images.sh) and run with podman: slow, so
# neither `make test` nor CI runs it. A second run reuses the base image and the
# dependency layer.
CONTAINER_TOOLS := /usr/bin/podman /usr/sbin/runc /usr/sbin/debootstrap

test-containers: install $(CONTAINER_TOOLS)
	$(BIN)/pytest -m container --durations=5 -s tests/integration/test_container_smoke.py

$(CONTAINER_TOOLS):
	@if [ "$$(id -u)" != 0 ]; then echo "the container tests need podman, runc and debootstrap: sudo apt-get install podman runc debootstrap"; exit 1; fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap

# The audit report's test opens it in the system's headless Chromium (Debian's package;
# Playwright drives it, and never downloads a browser of its own).
$(CHROMIUM):
	@if [ "$$(id -u)" != 0 ]; then echo "the tests need $(CHROMIUM): sudo apt-get install chromium"; exit 1; fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# The store's tests start a throwaway PostgreSQL server of their own (tests/support/postgres.py)
# from Debian's server binaries; the cluster the package may set up is not used.
postgresql:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "the tests need PostgreSQL's server: sudo apt-get install postgresql"; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	fi

# Runs every benchmark under bench/ and rewrites docs/benchmarks.md (about 40 minutes;
# `$(BIN)/python bench/report.py bench/text.py` reruns one section).
bench: install
	$(BIN)/python bench/report.py

# ruff; mypy over every package, the tests, the benchmarks and the store's revisions (files,
# not a package: their names start with digits); the import contracts in pyproject.toml
# (lint-imports).
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy -p sangsaeng
	$(BIN)/mypy tests bench server/db/migrations/versions
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .sangsaeng-demo build

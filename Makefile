# `make demo` and `make test` do all the set-up themselves on a fresh machine.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

CHROMIUM := /usr/bin/chromium
ROLES    := shared client server audit
# mypy and the import contracts read the package as it installs (sangsaeng.<role>); in
# this repo the roles sit beside sangsaeng/ (pyproject.toml maps them), which neither tool
# can follow through an editable install, so they read a tree of symlinks laid out like
# the installed package.
IMPORT_GRAPH := build/import-graph

.PHONY: install demo test test-fast bench lint clean

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

# Everything: unit, integration (real HTTP servers, real Flower processes) and end-to-end.
test: install $(CHROMIUM)
	$(BIN)/pytest

# The inner loop: no processes, no network.
test-fast: install
	$(BIN)/pytest -m unit -q

# The audit report's test opens it in the system's headless Chromium (Debian's package;
# Playwright drives it, and never downloads a browser of its own).
$(CHROMIUM):
	@if [ "$$(id -u)" != 0 ]; then echo "the tests need $(CHROMIUM): sudo apt-get install chromium"; exit 1; fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# Runs every benchmark under bench/ and rewrites docs/benchmarks.md (about 20 minutes).
bench: install
	$(BIN)/python bench/report.py

# ruff; mypy over the package as it installs, then over tests and benchmarks; the import
# contracts in pyproject.toml.
lint: install
	$(BIN)/ruff check .
	rm -rf $(IMPORT_GRAPH) && mkdir -p $(IMPORT_GRAPH)/sangsaeng
	ln -s $(addprefix $(CURDIR)/,$(wildcard sangsaeng/*)) $(IMPORT_GRAPH)/sangsaeng/
	for role in $(ROLES); do ln -s $(CURDIR)/$$role $(IMPORT_GRAPH)/sangsaeng/$$role; done
	cd $(IMPORT_GRAPH) && MYPYPATH=. $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml -p sangsaeng
	MYPYPATH=$(IMPORT_GRAPH) $(BIN)/mypy tests bench
	cd $(IMPORT_GRAPH) && $(CURDIR)/$(BIN)/lint-imports $(CURDIR)/pyproject.toml

clean:
	rm -rf $(VENV) .sangsaeng-demo build

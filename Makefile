# `make demo` and `make test` do all the set-up themselves on a fresh machine.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo test lint clean

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

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check . && $(BIN)/mypy sangsaeng shared client server

clean:
	rm -rf $(VENV) .sangsaeng-demo

# The two commands a newcomer needs: `make run` and `make test`. Both build .venv/ from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run test lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: venv
	mkdir -p var
	$(BIN)/hookd serve --config conf/hookd.dev.toml

lint: venv
	$(BIN)/ruff check hookd tests bench
	$(BIN)/mypy hookd

test: venv lint
	$(BIN)/python -m pytest -q

bench: venv  # e.g. make bench BENCH_ARGS="--quick" or BENCH_ARGS="--only ingest"
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

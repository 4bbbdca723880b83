# The two commands a newcomer needs: `make run` and `make test`. Both build .venv/ from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The binary is built in a venv of its own holding only the two lock files (runtime and
# build tools) and hookd: nothing the tests use can end up inside it.
DIST_VENV := .venv-dist
DIST_BIN := $(DIST_VENV)/bin
DIST_STAMP := $(DIST_VENV)/.installed
RUNTIME_LOCK := requirements/runtime.txt
BUILD_LOCK := requirements/build.txt
# Every file of the locks is hash-checked, and only wheels: nothing is built from source.
LOCKED := --require-hashes --only-binary :all:
# Everything the binary is built from; dist/hookd is rebuilt when one of them changes.
DIST_SOURCES := $(DIST_STAMP) $(wildcard hookd/*.py hookd/*/*.py hookd/*/*/*.py packaging/*.py packaging/*.spec) \
	$(wildcard hookd/ui/templates/* hookd/ui/static/*)
# Reproducible builds: the same hash seed (base_library.zip's order follows it), and the
# last commit's time (a fixed one outside git) for any timestamp the build would write.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 1700000000)
PYINSTALLER := PYTHONHASHSEED=0 SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(DIST_BIN)/pyinstaller \
	--noconfirm --clean --log-level WARN
CHECK_DIR := build/dist-check
# `make lock` resolves with this uv, in a venv of its own; nothing else needs the network
# once the venvs exist.
UV_VERSION := 0.13.8
LOCK_VENV := .venv-lock
UV_COMPILE := $(LOCK_VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock"

.PHONY: venv run test lint bench mutate dist dist-check copyright lock deb systemd-check ui-check clean

venv: $(STAMP)

# hookd's dependencies at the exact versions of the runtime lock (what the binary ships)
# and the build lock's PyInstaller (whose licence tests/system/test_copyright.py reads),
# then the test tools, which may float, held to those versions (the lock's pins without
# their hashes: pip would want hashes for the test tools and hookd too).
$(STAMP): pyproject.toml $(RUNTIME_LOCK) $(BUILD_LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(LOCKED) -r $(RUNTIME_LOCK) -r $(BUILD_LOCK)
	grep -o '^[A-Za-z0-9][^ ]*==[^ ]*' $(RUNTIME_LOCK) > $(VENV)/runtime-pins.txt
	$(BIN)/python -m pip install --quiet -c $(VENV)/runtime-pins.txt -e '.[dev]'
	touch $(STAMP)

# Made anew whenever a lock changes, so it never holds more than the locks say; hookd is
# installed (without dependencies, built by the locked setuptools) for its metadata, from
# a copy, so the build leaves no hookd.egg-info beside the sources for the tests to find.
$(DIST_STAMP): pyproject.toml LICENSE README.md hookd/__init__.py $(RUNTIME_LOCK) $(BUILD_LOCK)
	rm -rf $(DIST_VENV) build/hookd-metadata
	$(PYTHON) -m venv $(DIST_VENV)
	$(DIST_BIN)/python -m pip install --quiet $(LOCKED) -r $(BUILD_LOCK) -r $(RUNTIME_LOCK)
	mkdir -p build/hookd-metadata
	cp -R pyproject.toml LICENSE README.md hookd build/hookd-metadata/
	$(DIST_BIN)/python -m pip install --quiet --no-deps --no-build-isolation --no-index \
		./build/hookd-metadata
	touch $(DIST_STAMP)

dist: dist/hookd

dist/hookd: $(DIST_SOURCES)
	PYINSTALLER_CONFIG_DIR=$(CURDIR)/build/pyinstaller-cache $(PYINSTALLER) \
		--distpath dist --workpath build/pyinstaller packaging/hookd.spec
	@ls -l dist/hookd

# Builds the binary a second time from scratch, in another directory, and fails unless
# both are byte for byte the same; then runs it through --version, version --verbose and
# a serve/send/deliver/stop cycle with no Python environment of ours (system python3
# drives it; needs curl).
dist-check: dist
	rm -rf $(CHECK_DIR)
	PYINSTALLER_CONFIG_DIR=$(CURDIR)/$(CHECK_DIR)/cache $(PYINSTALLER) \
		--distpath $(CHECK_DIR)/dist --workpath $(CHECK_DIR)/work packaging/hookd.spec
	@first=$$(sha256sum < dist/hookd | cut -d' ' -f1); \
	second=$$(sha256sum < $(CHECK_DIR)/dist/hookd | cut -d' ' -f1); \
	if [ "$$first" != "$$second" ]; then \
		echo "dist-check: FAILED: two builds differ: dist/hookd $$first," \
			"$(CHECK_DIR)/dist/hookd $$second"; exit 1; fi; \
	echo "dist-check: two builds are identical: sha256 $$first"
	$(PYTHON) packaging/smoke.py dist/hookd

# Debian's machine-readable copyright file for everything inside dist/hookd, from the
# dist venv's metadata (the .deb ships it as /usr/share/doc/hookd/copyright).
copyright: dist/copyright

dist/copyright: dist/hookd packaging/copyright.py
	$(DIST_BIN)/python packaging/copyright.py dist/hookd > $@.tmp
	mv $@.tmp $@

# Resolves the locks from pyproject.toml and requirements/build.in (needs the network),
# keeping each pin that still fits; `make lock LOCK_ARGS=--upgrade` takes the newest
# versions, `LOCK_ARGS="--upgrade-package trio"` one package's.
lock: $(LOCK_VENV)/bin/uv
	$(UV_COMPILE) $(LOCK_ARGS) pyproject.toml -o $(RUNTIME_LOCK)
	$(UV_COMPILE) $(LOCK_ARGS) requirements/build.in -c $(RUNTIME_LOCK) -o $(BUILD_LOCK)

$(LOCK_VENV)/bin/uv:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet uv==$(UV_VERSION)

# The Debian package, from the binary (packaging/deb.py): offline, with dpkg-deb. The
# version is hookd's; `make deb DEB_VERSION=...` builds another.
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' hookd/__init__.py)
DEB_VERSION ?= $(VERSION)
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEB := dist/hookd_$(DEB_VERSION)_$(DEB_ARCH).deb

deb: $(DEB)

$(DEB): dist/hookd dist/copyright dist/hookd.1 packaging/deb.py $(wildcard packaging/deb/*) \
		systemd/hookd.service systemd/hookd.socket systemd/hookd.sysusers \
		systemd/hookd-ip-allow.conf conf/hookd.toml README.md
	$(PYTHON) packaging/deb.py --binary dist/hookd --copyright dist/copyright \
		--manpage dist/hookd.1 --out dist --version $(DEB_VERSION)

# hookd(1), from the command line's own definition.
dist/hookd.1: $(DIST_SOURCES) packaging/manpage.py
	mkdir -p dist
	$(DIST_BIN)/python packaging/manpage.py > $@.tmp && mv $@.tmp $@

# Debian's tools for the checks below, from apt when missing (they are not needed to build).
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends

# The package under a real systemd (packaging/systemd_check.py; needs root): lintian first,
# then a Debian root made with debootstrap (cached in ~/.cache/hookd) booted with
# systemd-nspawn, the package installed with dpkg -i and checked there.
systemd-check: deb
	@command -v lintian >/dev/null && command -v debootstrap >/dev/null && \
		command -v systemd-nspawn >/dev/null || \
		{ apt-get update -qq && $(APT_INSTALL) lintian debootstrap systemd-container; }
	lintian --fail-on error --tag-display-limit 0 $(DEB)
	$(PYTHON) packaging/systemd_check.py $(DEB)

# The development config's TCP listener reads its API token from var/api-token: made on
# the first run and shown then (later: cat var/api-token).
run: venv
	mkdir -p var
	@test -s var/api-token || { (umask 077 && $(BIN)/hookd config gen-token > var/api-token) && \
		echo "made the API token of 127.0.0.1:8787 in var/api-token: $$(cat var/api-token)"; }
	$(BIN)/hookd serve --config conf/hookd.dev.toml

lint: venv
	$(BIN)/ruff check hookd tests bench tools packaging
	$(BIN)/mypy
	$(BIN)/lint-imports

# The browser tests (tests/ui/) are `make ui-check`'s. The suite runs on every core
# (pytest-xdist): each test has its own daemon, socket, database and ports.
test: venv lint
	$(BIN)/python -m pytest -q -n auto --ignore=tests/ui

# The web console in a real browser: Playwright (the dev extra) driving Debian's Chromium,
# installed from apt when missing (Playwright's own browser download is not used).
# Screenshots of every page land in build/ui-screenshots/.
ui-check: venv
	@test -x /usr/bin/chromium || { apt-get update -qq && $(APT_INSTALL) chromium; }
	$(BIN)/python -m pytest -q tests/ui

bench: venv  # e.g. make bench BENCH_ARGS="--quick" or BENCH_ARGS="--only ingest"
	$(BIN)/python -m bench $(BENCH_ARGS)

# Mutation testing of the pure core ([tool.mutmut] in pyproject.toml): every mutant of
# hookd/domain/ and hookd/protocol/ is run against tests/unit/ only; fails when a module
# scores under 90%.
# Survivors left on purpose: tests/unit/EQUIVALENT_MUTANTS.md. Not part of `make test`.
mutate: venv
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2
	$(BIN)/python tools/mutation_score.py mutants/hookd/domain mutants/hookd/protocol

clean:
	rm -rf mutants $(VENV) $(DIST_VENV) $(LOCK_VENV) var build dist .pytest_cache .mypy_cache .ruff_cache

# The two commands a newcomer needs: `make run` and `make test`. Both build .venv/ from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DIST_STAMP := $(VENV)/.installed-dist
# Everything the binary is built from; dist/hookd is rebuilt when one of them changes.
DIST_SOURCES := $(DIST_STAMP) $(wildcard hookd/*.py hookd/*/*.py hookd/*/*/*.py packaging/*.py packaging/*.spec) \
	$(wildcard hookd/ui/templates/* hookd/ui/static/*)

.PHONY: venv run test lint bench mutate dist dist-check deb systemd-check ui-check clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The single-file binary needs only hookd's dependencies and PyInstaller (the `dist` extra),
# not the test tools; once .venv/ has them, building needs no network.
$(DIST_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dist]'
	touch $(DIST_STAMP)

dist: dist/hookd

dist/hookd: $(DIST_SOURCES)
	PYINSTALLER_CONFIG_DIR=$(CURDIR)/build/pyinstaller-cache $(BIN)/pyinstaller \
		--noconfirm --clean --log-level WARN \
		--distpath dist --workpath build/pyinstaller packaging/hookd.spec
	@ls -l dist/hookd

# Builds the binary, then runs it through --version and a serve/send/deliver/stop cycle
# with no Python environment of ours (system python3 drives it; needs curl).
dist-check: dist
	$(PYTHON) packaging/smoke.py dist/hookd

# The Debian package, from the binary (packaging/deb.py): offline, with dpkg-deb. The
# version is hookd's; `make deb DEB_VERSION=...` builds another.
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' hookd/__init__.py)
DEB_VERSION ?= $(VERSION)
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEB := dist/hookd_$(DEB_VERSION)_$(DEB_ARCH).deb

deb: $(DEB)

$(DEB): dist/hookd dist/copyright packaging/deb.py $(wildcard packaging/deb/*) \
		systemd/hookd.service systemd/hookd.socket systemd/hookd.sysusers \
		systemd/hookd-ip-allow.conf conf/hookd.toml README.md
	$(PYTHON) packaging/deb.py --binary dist/hookd --copyright dist/copyright --out dist \
		--version $(DEB_VERSION)

# Debian's tools for the checks below, from apt when missing (they are not needed to build).
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends

# The package under a real systemd (packaging/systemd_check.py; needs root): lintian first,
# then a Debian root made with debootstrap (cached in ~/.cache/hookd) booted with
# systemd-nspawn, the package installed with dpkg -i and checked there.
systemd-check: deb
	@command -v lintian >/dev/null && command -v debootstrap >/dev/null && \
		command -v systemd-nspawn >/dev/null || \
		{ apt-get update -qq && $(APT_INSTALL) lintian debootstrap systemd-container; }
	lintian --fail-on error --no-tag-display-limit $(DEB)
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

# The browser tests (tests/ui/) are `make ui-check`'s.
test: venv lint
	$(BIN)/python -m pytest -q --ignore=tests/ui

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
	rm -rf mutants $(VENV) var build dist .pytest_cache .mypy_cache .ruff_cache

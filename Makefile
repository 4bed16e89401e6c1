# Lakestream — every target creates the virtualenv (.venv/) on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Every dependency (runtime, dev and spark extras) pinned with the hashes of its files, so a
# fresh machine installs exactly what CI tested. Locked for CPython 3.11 on linux x86_64
# (manylinux_2_28: glibc >= 2.28), the project's machines; newer CPythons work as long as
# every pinned release installs there. `make lock` re-resolves it after pyproject.toml changes.
LOCK   := requirements.lock
LOCK_FOR := --python-version 3.11 --python-platform x86_64-manylinux_2_28

.PHONY: setup lock demo serve test lint typecheck unit integration faults bench clean

setup: $(STAMP)

$(STAMP): $(LOCK) pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is needed"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

lock:                  ## re-resolve requirements.lock from pyproject.toml (UPGRADE=1: newest releases)
	test -x $(BIN)/uv || $(MAKE) setup
	$(BIN)/uv pip compile --quiet pyproject.toml --extra dev --extra spark --generate-hashes \
	    $(LOCK_FOR) --custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade) -o $(LOCK)

demo: setup            ## the main job on embedded defaults; ends with the dashboard's URL
	$(BIN)/lakestream demo

serve: setup           ## the demo, then its dashboard until Ctrl-C (prints a login token)
	$(BIN)/lakestream demo --serve

test: lint typecheck   ## lint, types, then every test (integration included), on 3 workers
	$(BIN)/pytest -q -n 3 --dist worksteal

lint: setup            ## ruff, and the import rules of docs/architecture.md (import-linter)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports --no-cache

typecheck: setup
	$(BIN)/mypy

unit: setup            ## the fast tests only
	$(BIN)/pytest -q -m "not integration and not slow"

integration: setup
	$(BIN)/pytest -q -m integration

faults: setup          ## fault injection: kill -9, outages, full disk, fuzzing (~18 min)
	$(BIN)/pytest -m faults -q

bench: setup           ## benchmarks (print figures and ratios; never pass/fail)
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) lakestream-data .pytest_cache .mypy_cache .ruff_cache

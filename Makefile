# `make run` runs the pipeline, `make test` runs the tests, `make lint` checks style and types,
# `make docs` builds the documentation site; each sets up .venv first.
# Installs take their exact versions from constraints.txt, so installs months apart agree.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs

.PHONY: install run figures panel-figures screenshots services services-stop test lint docs docs-serve mutate bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,lint]'
	touch $(STAMP)

# The docs extra (MkDocs, Material), on top of the package: the Reference pages import nextclose.
$(DOCS_STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[docs]'
	touch $(DOCS_STAMP)

install: $(STAMP)

run: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

# The generated blocks of README.md and docs/results/ (the headline from the reports `make run`
# wrote, the tuning, panel, bench and mutation figures from their files; tests/test_results_pages.py
# checks them).
figures: $(STAMP)
	$(BIN)/python -m nextclose.results_pages

# docs/results/panel.md: the pipeline on the 20 S&P 500 stocks in a clean clone of HEAD (about
# 8 min), its reports into bench/results/sp500/, then the blocks rendered from them.
panel-figures: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python scripts/panel_figures.py
	$(BIN)/python -m nextclose.results_pages

# docs/*.png, the README's pictures of the MLflow UI, optuna-dashboard and `dvc plots show`, from
# this workspace's stores, with headless Chromium (Debian: apt-get install chromium).
screenshots: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python scripts/screenshots.py

# The servers of a team on this machine, to try team mode (README: Working as a team):
# PostgreSQL (.ci/postgres: Debian's package, as root), moto's S3-compatible server and
# mlflow server, on loopback; then `source /tmp/nextclose-services/env.sh` in each shell.
services: $(STAMP)
	$(BIN)/python scripts/services.py start

services-stop: $(STAMP)
	$(BIN)/python scripts/services.py stop

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

# ruff (rules in pyproject.toml) over the code, the tests and the benchmarks; mypy over src/.
lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy

# The documentation site (mkdocs.yml) into site/, with --strict: a warning, a broken link or
# anchor, or a page missing from the nav fails the build. NO_MKDOCS_2_WARNING: Material's banner.
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The site at http://127.0.0.1:8000, rebuilt when a page, params.yaml, the code or a report changes.
docs-serve: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# Mutation testing of the core with the fast unit tests; MODULE=metrics runs (again) one module's
# mutants. Results persist in mutants/: a plain rerun continues where the last one stopped.
# One worker by default, so the run leaves a core free; MUTATE_CHILDREN=2 uses two.
MUTATE_CHILDREN ?= 1
mutate: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[mutate]'
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/mutmut run --max-children $(MUTATE_CHILDREN) \
		$(if $(MODULE),"nextclose.$(MODULE).*") || true
	$(BIN)/python scripts/mutation_score.py --write
	$(BIN)/python -m nextclose.results_pages

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -r bench/requirements.txt
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/run.py
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/panel.py

clean:
	rm -rf $(VENV) site

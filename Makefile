# Two commands do everything: `make run` (execute the notebooks) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   ?= .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NB      ?=
FAST    ?=
P       ?=
DATASET ?=
TIMEOUT ?=
WEIGHTS ?=

.PHONY: help install run site test lint bench lab clean weights unpack-weights

help:  ## list the targets
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements.txt
	$(PYTHON) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install requirements and helpers

unpack-weights: $(STAMP)
	$(if $(WEIGHTS),$(PYTHON) -m helpers.infra.weights unpack '$(WEIGHTS)')

# notebooks make run executes at once (each on its own kernel, with its share of the cores)
JOBS ?= 2

run: $(STAMP) unpack-weights  ## execute notebooks (NB=05, FAST=1, P="SEED=1 EPOCHS=5", DATASET=fashion_mnist, TIMEOUT=7200, WEIGHTS=archive, JOBS=1)
	$(PYTHON) -m helpers.infra.runner --jobs $(JOBS) $(if $(NB),--nb $(NB)) $(if $(filter 1 yes true,$(FAST)),--fast) \
		$(if $(DATASET),--dataset $(DATASET)) $(if $(P),--set '$(P)') $(if $(TIMEOUT),--timeout $(TIMEOUT))

site: $(STAMP)  ## the course as a static book in build/site/ (from make run's notebooks)
	$(PYTHON) -m helpers.infra.site

lint: $(STAMP)  ## ruff over code and notebooks
	$(VENV)/bin/ruff check .

# make test keeps its runs apart from make run's: executed notebooks, metrics and site; its
# two workers share the cores, so NumPy's BLAS runs on one thread in the tests too (as
# config.set_seed sets it in every notebook)
TEST_ENV := GENERATIVE_BUILD_DIR=$(CURDIR)/build/test NOTEBOOK_FAST=1 NOTEBOOK_STRICT=1 \
	OPENBLAS_NUM_THREADS=1

test: $(STAMP) lint  ## ruff, unit tests, every notebook in fast mode (nbval), the site in Chromium
	$(TEST_ENV) $(PYTHON) -m pytest tests notebooks --ignore=tests/site --nbval-lax \
		--nbval-current-env --durations=15 -n 2 --dist loadscope
	$(TEST_ENV) $(PYTHON) -m helpers.infra.site
	$(TEST_ENV) $(PYTHON) -m pytest tests/site -n 2

bench: $(STAMP)  ## run the benchmarks in benchmarks/
	@shopt -s nullglob; files=(benchmarks/bench_*.py); \
	if [ $${#files[@]} -eq 0 ]; then echo "No benchmarks yet."; fi; \
	for f in "$${files[@]}"; do echo "--> $$f"; $(PYTHON) $$f || exit 1; done

weights: $(STAMP)  ## pack every trained model of the cache into build/weights/generative-weights.tar.gz
	$(PYTHON) -m helpers.infra.weights pack

lab: $(STAMP) unpack-weights  ## start JupyterLab on notebooks/ (WEIGHTS=archive unpacks trained weights first)
	$(VENV)/bin/jupyter lab notebooks

clean:  ## remove build outputs (keeps .venv and data/)
	rm -rf build .pytest_cache .ruff_cache

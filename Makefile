# Two set-up commands: `make demo` and `make test`. The Makefile owns the virtual environment.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch and torchvision are pinned in the same pip call so pip takes the local wheels where they
# exist; override TORCH_PINS on other machines (e.g. `make demo TORCH_PINS="torch torchvision"`).
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: demo test lint install install-dev clean

# One pip call per target (each call resolves everything again).
PIP_INSTALL = $(PY) -m pip install -q --disable-pip-version-check

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) $(TORCH_PINS) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) $(TORCH_PINS) -e ".[dev]"
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(VENV)/bin/classicnets train --preset default --out runs

RUFF = $(VENV)/bin/ruff check src tests benchmarks && $(VENV)/bin/ruff format --check src tests benchmarks

lint: $(VENV)/.installed-dev
	$(RUFF)
	$(VENV)/bin/mypy

# mypy (one process, about 26 s from cold here) runs beside the tests; either failing fails.
test: $(VENV)/.installed-dev
	$(RUFF)
	$(VENV)/bin/mypy & mypy=$$!; $(VENV)/bin/pytest; tests=$$?; wait $$mypy && exit $$tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

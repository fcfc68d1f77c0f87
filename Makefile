# Two entry points for a fresh clone: `make train` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install train demo test lint import-official clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Main job on the embedded demo data (`gifnet train task=joint`; every command: `gifnet --help`).
train: $(STAMP)
	$(VENV)/bin/gifnet train task=joint

# Fuse a generated demo pair: the released weights when ../shared is present, else a randomly initialised model.
demo: $(STAMP)
	$(VENV)/bin/gifnet demo

test: $(STAMP)
	$(PY) -m pytest -q -n 2

lint: $(STAMP)
	$(PY) -m ruff check gifnet scripts tests

# Convert the released checkpoint (paths.official: ../shared/official/Final.model) into our format.
import-official: $(STAMP)
	$(VENV)/bin/gifnet import dst=checkpoints/gifnet_official.pt

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

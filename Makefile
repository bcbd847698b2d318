# The two commands a newcomer needs (see README.md). Both create or refresh
# the virtual environment first.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: verify test lint

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

verify: $(STAMP)
	$(VENV)/bin/silkcheck verify

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

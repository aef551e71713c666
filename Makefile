# The README's commands. Everything installs from the project's own files into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast typecheck bench bench-quick chaos lint docs lock clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/batchline demo $(if $(FLOWER),--flower)

test: $(STAMP)
	$(BIN)/ruff check .
	$(MAKE) --no-print-directory typecheck
	$(BIN)/pytest -q -m "not chaos and not bench"

# mypy strict over the six packages as they are imported (batchline.workers, ...): the folders are
# mapped by pyproject's package-dir, which mypy does not read, so it checks a tree of links mirroring it.
PACKAGES := config producers workers emulator gateway
typecheck: $(STAMP)
	rm -rf .typecheck && mkdir -p .typecheck/batchline
	for f in batchline/*; do ln -s ../../$$f .typecheck/batchline/; done
	for p in $(PACKAGES); do ln -s ../../$$p .typecheck/batchline/$$p; done
	MYPYPATH=.typecheck $(BIN)/mypy -p batchline

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not e2e and not slow"

chaos: $(STAMP)
	BATCHLINE_CHAOS_REPORT=docs/chaos.md $(BIN)/pytest -q tests/e2e/test_chaos*.py

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks.run --quick --no-write

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# docs/settings.md from config/settings.py (tests/unit/test_settings_doc.py fails when it is stale).
docs: $(STAMP)
	$(BIN)/python -m batchline.config.settings_doc docs/settings.md

# Re-pin after changing dependencies in pyproject.toml.
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --no-header -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .typecheck .demo

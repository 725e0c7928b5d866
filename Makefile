# Two commands for a new user: `make run` (set up everything, run the product) and
# `make test` (set up everything, run every test). Everything else is a helper.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# PyTorch is a test/benchmark reference only. This exact version installs the CPU build
# from a local wheel on our machines; elsewhere pip fetches it from PyPI.
TORCH := torch==2.13.0

.PHONY: run test setup setup-test vendor wheel lint bench clean

# HOST/PORT/DATA_DIR pass through to `gradscope serve` (defaults 127.0.0.1, 8000, ~/.local/share/gradscope).
HOST ?= 127.0.0.1
PORT ?= 8000
SERVE_ARGS = --host $(HOST) --port $(PORT) $(if $(DATA_DIR),--data-dir $(DATA_DIR))

run: setup
	$(BIN)/gradscope serve $(SERVE_ARGS)

# Two test processes, one per core of a small machine: much of the suite waits on servers,
# workers and the browser. --dist loadfile keeps a module's tests (and its once-per-module
# fixtures) in one process. TEST_ARGS adds to it (e.g. TEST_ARGS="-n 0 -k napkin").
TEST_ARGS ?=
test: setup setup-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 --dist loadfile $(TEST_ARGS)

setup: $(VENV)/.setup-run vendor

setup-test: $(VENV)/.setup-test

# The front-end libraries (uPlot, viz.js, svg-pan-zoom, Swagger UI for /docs): npm with the
# committed lockfile, then copied where the pages load them from (no bundler, no CDN at run time).
# --ignore-scripts: none of them needs an install script (swagger-ui-dist's would report usage).
vendor: static/vendor/.stamp

SWAGGER := node_modules/swagger-ui-dist

static/vendor/.stamp: package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js) is needed to install the dashboard's libraries"; exit 1; }
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	mkdir -p static/vendor
	cp node_modules/uplot/dist/uPlot.esm.js node_modules/uplot/dist/uPlot.min.css static/vendor/
	cp node_modules/@viz-js/viz/dist/viz.js static/vendor/viz.js
	cp node_modules/svg-pan-zoom/dist/svg-pan-zoom.min.js static/vendor/
	cp $(SWAGGER)/swagger-ui-bundle.js $(SWAGGER)/swagger-ui.css $(SWAGGER)/favicon-32x32.png static/vendor/
	touch $@

$(VENV)/.setup-run: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "gradscope needs Python >= 3.11; found " + sys.version.split()[0] + " (set PYTHON=...)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.setup-test: $(VENV)/.setup-run vendor pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,ray]' '$(TORCH)'
	touch $@

# The installable wheel, in dist/: the engine, the server, the pages, the vendored libraries and
# the bundled model, all under the one `gradscope` import name (tests/test_wheel.py installs it).
wheel: setup
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation -w dist .
	rm -rf build

lint: setup-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup-test
	$(BIN)/python bench/scalar.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis node_modules static/vendor build dist *.egg-info

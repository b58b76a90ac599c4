# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.koqa-installed

.PHONY: setup test test-fast demo test-tools clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)
	$(BIN)/koqa models prepare

test: $(STAMP) test-tools
	$(BIN)/python -m pytest -q

# Best effort: the browser and PostgreSQL tests need Debian packages; without them they skip.
test-tools:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v pg_ctlcluster >/dev/null \
	  || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
	       && apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	          chromium chromium-driver fonts-noto-cjk postgresql >/dev/null; } \
	  || echo "note: chromium/postgresql not installed; their tests will skip"

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

demo: setup
	$(BIN)/koqa ingest samples/ --collection demo
	$(BIN)/koqa ask "훈민정음을 창제한 왕은 누구인가?" --collection demo

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info

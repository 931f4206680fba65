# Two entry points: `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean browser-deps pg-deps

# Debian's python3 may lack venv (ensurepip); as root, install it rather than fail.
$(BIN)/python:
	@echo "make: creating $(VENV)"
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv </dev/null && $(PYTHON) -m venv $(VENV); }

# One line says what is happening; pip's own output goes to .venv/install.log and is shown only
# when the install fails.
$(STAMP): $(BIN)/python pyproject.toml
	@echo "make: installing evhub and its test tools into $(VENV) (log: $(VENV)/install.log) ..."
	@{ $(BIN)/python -m pip install --upgrade pip && $(BIN)/python -m pip install -e '.[dev]'; } \
	  >$(VENV)/install.log 2>&1 </dev/null || { tail -40 $(VENV)/install.log; echo "make: install failed, see $(VENV)/install.log" >&2; exit 1; }
	@touch $(STAMP)
	@echo "make: installed"

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/evhub sim --stations 50 --vehicles 200 --duration 45 --speedup 60 --seed 7 --ocpp-share 0.3

# Lint and types first (seconds), then the suite. pytest exits 5 when it collected nothing; that
# must fail, and it does (any non-zero fails make).
test: $(STAMP) browser-deps pg-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# The dashboard test drives Debian's chromium with Playwright (never Playwright's browser download).
# A no-op when both are present; as root on Debian it installs them (no stdin needed); otherwise it
# says so and the browser test skips with that reason.
browser-deps: $(STAMP)
	@[ -x /usr/bin/chromium ] || { echo "make: installing Debian's chromium for the dashboard test (log: $(VENV)/browser.log) ..."; \
	  [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core; } \
	  >$(VENV)/browser.log 2>&1 </dev/null; } || \
	  echo "browser-deps: chromium is not installed and cannot be installed here" >&2
	@$(BIN)/python -c "import playwright" 2>/dev/null || $(BIN)/python -m pip install --quiet playwright >>$(VENV)/browser.log 2>&1 </dev/null || \
	  echo "browser-deps: pip install playwright failed (see $(VENV)/browser.log)" >&2

# The PostgreSQL tests start a private cluster from Debian's server binaries (tests/pgcluster.py).
# A no-op when they are there; as root on Debian it installs the package (no stdin needed);
# otherwise it says so and the PostgreSQL tests fail with that reason.
pg-deps:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "make: installing Debian's postgresql for the store tests (log: $(VENV)/pg.log) ..."; \
	  [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql; } \
	  >$(VENV)/pg.log 2>&1 </dev/null; } || \
	  echo "pg-deps: PostgreSQL server binaries are not installed and cannot be installed here" >&2

clean:
	rm -rf $(VENV) build *.egg-info

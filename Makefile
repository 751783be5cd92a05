# KAPNotes: `make run` and `make test` do all the set-up on a fresh machine.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt | cksum | cut -d' ' -f1)
PORT   ?= 8501
# pytest-xdist workers for `make test` and `make check` (auto: one per CPU; JOBS=0: no workers)
JOBS   ?= auto

.PHONY: run test check lint bench install clean

$(STAMP): requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m kapnotes init-db
	$(PY) -m kapnotes seed-demo --if-empty
	$(PY) -m uvicorn kapnotes.asgi:app --host 127.0.0.1 --port $(PORT) --no-proxy-headers

AXE := node_modules/axe-core/axe.min.js

# axe-core (accessibility checks in the browser tests), from the npm registry.
$(AXE): package.json
	@if command -v npm >/dev/null 2>&1; then npm install --silent --no-audit --no-fund && touch $(AXE); \
	else echo "npm not found: accessibility tests will be skipped (and fail in CI)"; fi

# Every tier (unit on SQLite and PostgreSQL, AppTest, browser) in parallel: each pytest-xdist worker
# has its own PostgreSQL database, SQLite files and browser-tier server (tests/conftest.py).
test: $(STAMP) $(AXE)
	$(PY) -m pytest -n $(JOBS) --dist loadgroup $(PYTEST_ARGS)

# The fast loop: lint, then the unit tier on SQLite in parallel, without the tests marked slow
# (`make test` runs everything).
check: lint
	env -u KAPNOTES_TEST_POSTGRES_URL -u KAPNOTES_REQUIRE_E2E \
		$(PY) -m pytest tests/unit -n $(JOBS) --dist loadgroup -m "not slow and not postgres" -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .

bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

# Issue 19: simulated clinicians over Streamlit's WebSocket protocol, one process (SQLite) and two
# behind nginx (PostgreSQL: KAPNOTES_BENCH_POSTGRES_URL, emptied); writes bench/load-results.json
bench-load: $(STAMP)
	$(PY) -m bench.load $(BENCH_LOAD_ARGS)

# Two commands work on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_DIR ?= demo-workspace

.PHONY: setup test lint browser postgres demo clean bench

$(BIN)/likely: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/likely

lint: setup
	$(BIN)/ruff check src tests benchmarks

# The browser tests (tests/test_web_browser.py) drive Debian's Chromium through Playwright (the
# dev extra; no browser download). Install it when missing, with sudo when not root; without
# apt (or without the rights) this only says so, and those tests skip with the reason.
CHROMIUM ?= /usr/bin/chromium
APT_GET  ?= apt-get

browser:
	@if [ -x "$(CHROMIUM)" ]; then exit 0; fi; \
	if ! command -v $(APT_GET) >/dev/null 2>&1; then \
		echo "Chromium is missing and apt-get is not available: the browser tests will skip."; \
		exit 0; fi; \
	sudo=""; \
	if [ "$$(id -u)" != 0 ]; then \
		if command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else \
			echo "Chromium is missing; not root and no sudo: the browser tests will skip" \
			     "(install it with: apt-get install chromium)."; exit 0; fi; fi; \
	echo "Installing Chromium for the browser tests: $${sudo:+$$sudo }$(APT_GET) install -y chromium"; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$sudo $(APT_GET) install -y chromium \
		|| { $$sudo $(APT_GET) update && $$sudo $(APT_GET) install -y chromium; } \
		|| echo "Could not install Chromium: the browser tests will skip."

# The table-destination tests (tests/test_activation.py) start their own throwaway PostgreSQL
# server from Debian's binaries (initdb, pg_ctl in /usr/lib/postgresql/*/bin; no service is
# used). Install them when missing, as for Chromium; without them those tests skip with the reason.
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then exit 0; fi; \
	if ! command -v $(APT_GET) >/dev/null 2>&1; then \
		echo "PostgreSQL is missing and apt-get is not available: the PostgreSQL tests will skip."; \
		exit 0; fi; \
	sudo=""; \
	if [ "$$(id -u)" != 0 ]; then \
		if command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else \
			echo "PostgreSQL is missing; not root and no sudo: the PostgreSQL tests will skip" \
			     "(install it with: apt-get install postgresql)."; exit 0; fi; fi; \
	echo "Installing PostgreSQL for the table-destination tests: $${sudo:+$$sudo }$(APT_GET) install -y postgresql"; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$sudo $(APT_GET) install -y postgresql \
		|| { $$sudo $(APT_GET) update && $$sudo $(APT_GET) install -y postgresql; } \
		|| echo "Could not install PostgreSQL: the PostgreSQL tests will skip."

test: setup lint browser postgres
	$(BIN)/python -m pytest -q

demo: setup
	bash scripts/demo.sh $(DEMO_DIR)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache

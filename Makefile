# Two commands work on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_DIR ?= demo-workspace

.PHONY: setup test lint browser postgres java spark demo clean bench

$(BIN)/likely: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/likely

lint: setup
	$(BIN)/ruff check src tests benchmarks

# Tests that need a system package install it when missing (scripts/apt-ensure.sh: apt, with
# sudo when not root); without apt or the rights they skip, saying why. The browser tests drive
# Debian's Chromium through Playwright (the dev extra; no browser download); the table-destination
# tests start a throwaway PostgreSQL server from Debian's binaries (no service is used).
CHROMIUM ?= /usr/bin/chromium
APT_GET  ?= apt-get

browser:
	@APT_GET=$(APT_GET) bash scripts/apt-ensure.sh chromium "browser tests" "$(CHROMIUM)"

postgres:
	@APT_GET=$(APT_GET) bash scripts/apt-ensure.sh postgresql "PostgreSQL tests" \
		"/usr/lib/postgresql/*/bin/initdb"

# The Spark contract tests (tests/test_spark_contract.py) run one small run on DuckDB and on
# PySpark local[2]: PySpark starts a JVM (Java 17+: Debian's headless JRE), and the `spark` extra
# brings PySpark and Ibis's PySpark backend. Either missing: those tests skip, saying why.
JAVA ?= /usr/lib/jvm/java-17-openjdk-*/bin/java /usr/lib/jvm/java-2[1-9]-openjdk-*/bin/java

java:
	@APT_GET=$(APT_GET) bash scripts/apt-ensure.sh openjdk-17-jre-headless "Spark tests" $(JAVA)

spark: setup java
	@$(BIN)/python -c "import pyspark, ibis.backends.pyspark" 2>/dev/null \
		|| $(BIN)/python -m pip install --quiet -e '.[dev,spark]' \
		|| echo "Could not install the spark extra: the Spark tests will skip."

test: setup lint browser postgres spark
	$(BIN)/python -m pytest -q

demo: setup
	bash scripts/demo.sh $(DEMO_DIR)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache

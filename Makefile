# The two commands a newcomer needs: `make demo` and `make test`. Everything installs itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install test lint bench demo demo-stop browser postgres smtp-sink wrk clean golden

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@# This environment may set PYTHONDONTWRITEBYTECODE; without .pyc files every command
	@# would recompile the package from source (about 30 ms a run).
	$(PY) -m compileall -q newsletter
	touch $(STAMP)

# Debian's Chromium for the browser tests (the preview, pages at phone width).
browser:
	@[ -x $(CHROMIUM) ] || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# Debian's PostgreSQL server (15 on Debian 12, 17 on 13) for the store tests on PostgreSQL: the
# package only, with no cluster of its own; the tests start a throwaway one (tests/pg.py).
# Should it fail to install, those tests are skipped and say why.
postgres:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { \
	  $(SUDO) mkdir -p /etc/postgresql-common/createcluster.d && \
	  echo "create_main_cluster = false" | $(SUDO) tee /etc/postgresql-common/createcluster.d/newsletter.conf >/dev/null && \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null || \
	  echo "make postgres: could not install postgresql; the PostgreSQL tests will be skipped"; }

test: install browser postgres smtp-sink
	$(PY) -m compileall -q newsletter
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check newsletter tests bench tools

# Debian's postfix: smtp-sink for the send benchmark, and a private, throwaway instance
# the bounce tests start (tools/make_postfix_dsn.py); the system's Postfix is never configured or started.
smtp-sink:
	@[ -x /usr/sbin/smtp-sink ] || { echo "postfix postfix/main_mailer_type select No configuration" | \
	  $(SUDO) debconf-set-selections && $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postfix >/dev/null; }

# wrk, the load generator of the web benchmark.
wrk:
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq wrk >/dev/null; }

# Every benchmark runs; the exit status is non-zero if any missed its target.
bench: install browser postgres smtp-sink wrk
	$(PY) -m compileall -q newsletter
	@status=0; \
	$(PY) bench/bench_build.py || status=1; echo; \
	$(PY) bench/bench_check.py || status=1; echo; \
	$(PY) bench/bench_preview.py || status=1; echo; \
	NEWSLETTER_SECRET=bench-secret $(PY) bench/bench_send.py || status=1; echo; \
	$(PY) bench/bench_subscribers.py || status=1; echo; \
	$(PY) bench/bench_postgres.py || status=1; echo; \
	$(PY) bench/bench_stats.py || status=1; echo; \
	$(PY) bench/bench_web.py || status=1; echo; \
	$(PY) bench/bench_archive.py || status=1; echo; \
	$(PY) bench/bench_enrich.py || status=1; \
	exit $$status

demo: install
	tools/demo.sh

demo-stop:
	tools/demo-stop.sh

# Refresh the committed golden output of the sample issue, on purpose only.
golden: install
	NEWSLETTER_UPDATE_GOLDEN=1 $(PY) -m pytest -q tests/integration/test_golden.py

clean:
	rm -rf build site outbox .pytest_cache

# The two commands of the README: `make run` and `make test`.
# Every step writes a file and is skipped when that file is already there.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DEMO   := data/demo
DB     := data/shop.duckdb
MODELS := data/models
USERS  := data/users.json
LOGINS := data/demo-logins.txt
ENVFILE := .env.local
WITH_ENV := set -a && . ./$(ENVFILE) && set +a &&

.PHONY: run test bench clean-demo

run: $(VENV)/.installed $(ENVFILE) $(DB) $(MODELS)/.trained $(USERS)
	@echo "sign in with a login from $(LOGINS)"
	$(WITH_ENV) $(PY) cli.py serve --db $(DB) --models $(MODELS) --host 127.0.0.1 --port 8050

test: $(VENV)/.installed $(VENV)/.engines
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) bench/run_all.py

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

# The optional scale-out engines (Spark, Dask): the tests need them, `make run` does not.
$(VENV)/.engines: requirements-engines.txt $(VENV)/.installed
	$(PY) -m pip install -q -r requirements-engines.txt
	touch $@

# A local demo secret for pseudonymising customer ids; real deployments export their own.
$(ENVFILE):
	@echo "creating $(ENVFILE) with a random RECSIGHT_SECRET for the demo (git-ignored; keep your own secret for real data)"
	@umask 077 && $(PYTHON) -c "import secrets; print('RECSIGHT_SECRET=' + secrets.token_hex(32))" > $@

$(DEMO)/events.parquet: | $(VENV)/.installed
	$(PY) cli.py synth --out $(DEMO)

$(DB): $(DEMO)/events.parquet $(ENVFILE)
	$(WITH_ENV) $(PY) cli.py ingest --db $(DB) --format generic $(DEMO)

$(MODELS)/.trained: $(DB)
	$(WITH_ENV) $(PY) cli.py train --db $(DB) --models $(MODELS) --quick
	touch $@

# One demo login per role, each with a random password written to $(LOGINS) (git-ignored).
$(USERS): | $(VENV)/.installed
	@umask 077 && rm -f $(LOGINS) && for role in admin analyst support intake; do \
	  pw=$$($(PY) -c "import secrets; print(secrets.token_urlsafe(12))"); \
	  printf '%s\n' "$$pw" | $(PY) cli.py users add $$role --role $$role >/dev/null || exit 1; \
	  printf '%-8s %s\n' "$$role" "$$pw" >> $(LOGINS); \
	done
	@echo "created demo logins (user, password) in $(LOGINS):" && cat $(LOGINS)

clean-demo:
	rm -rf $(DEMO) $(DB) $(MODELS) $(USERS) $(LOGINS) data/audit.duckdb

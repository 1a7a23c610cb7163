# Two commands do all set-up: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# npm writes this file on every install; it is newer than the lock file once installed.
NODE_STAMP := node_modules/.package-lock.json

.PHONY: run test chaos audit install lint typecheck format lock clean

run: install
	$(VENV)/bin/convonet migrate
	$(VENV)/bin/convonet seed
	exec $(VENV)/bin/convonet dev

# The chaos suite (tests/chaos) starts its own servers and takes minutes: `make chaos`.
test: install
	$(PY) -m pytest -q --ignore=tests/chaos

# Fault injection on the real stack: kills and restarts processes mid-call (a few minutes).
# The two cases about API processes also run in `make test`.
CHAOS_ALSO := tests/web/test_api_restart_in_browser.py tests/transfer/test_two_api_processes.py
chaos: install
	$(PY) -m pytest -q -s tests/chaos $(CHAOS_ALSO)

# Known vulnerabilities in the pinned Python packages and the dashboard's npm packages.
# --strict: a package that could not be checked (no vulnerability service reachable) fails
# the audit instead of passing it.
audit: install
	$(VENV)/bin/pip-audit --strict --no-deps --disable-pip --progress-spinner off -r requirements.lock
	npm audit --omit=dev

install: $(STAMP) $(NODE_STAMP)

# The dashboard's browser code (JsSIP) comes from npm at the versions the lock file pins.
$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "Convonet needs Node.js with npm (for the agent dashboard's JsSIP)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Convonet needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy convonet workflows activities api worker.py

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Re-pin every dependency after changing pyproject.toml.
lock:
	$(PY) -m pip freeze --exclude-editable | grep -v '^convonet' > requirements.lock

clean:
	rm -rf $(VENV) var node_modules

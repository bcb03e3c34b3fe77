# The two commands of the README: `make run` (service on its embedded defaults) and `make test`.
PYTHON ?= python
# where `make run` listens: `make run PORT=9000 HOST=0.0.0.0` (or exported in the environment)
HOST ?= 127.0.0.1
PORT ?= 8000
# pytest workers for `make test`: each test file runs whole in one worker (--dist loadfile), so a file's
# module fixtures are built once; the tests that share a server name their objects uniquely
PYTEST_WORKERS ?= 2
export HF_HUB_OFFLINE := 1

.PHONY: install run test lint typecheck unit bench

install:
	scripts/install.sh

run: install
	$(PYTHON) -m uvicorn dbmeta_app.main:app --host $(HOST) --port $(PORT)

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

typecheck:
	$(PYTHON) -m mypy

test: install lint typecheck
	$(PYTHON) -m pytest -q -ra -n $(PYTEST_WORKERS) --dist loadfile

unit:
	$(PYTHON) -m pytest -q -m "not integration"

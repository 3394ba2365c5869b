# Developer targets. On a fresh machine use ./run (it installs what these need first).
PYTHON ?= .venv/bin/python
DEMO_MACHINE ?= examples/machines/server-16g
DEMO_CONFIG ?= examples/pmemd.yaml

.PHONY: demo check test lint typecheck

demo:
	$(PYTHON) -m pmemd memmap --root $(DEMO_MACHINE)
	$(PYTHON) -m pmemd plan --root $(DEMO_MACHINE) --config $(DEMO_CONFIG) || [ $$? -eq 4 ]

check: lint typecheck test

lint:
	$(PYTHON) -m ruff check .

typecheck:
	$(PYTHON) -m mypy

test:
	$(PYTHON) -m pytest

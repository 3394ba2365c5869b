# Developer targets. On a fresh machine use ./run (it installs what these need first).
PYTHON ?= .venv/bin/python
DEMO_MACHINE ?= examples/machines/server-16g
DEMO_CONFIG ?= examples/pmemd.yaml

.PHONY: demo check test lint typecheck architecture

demo:
	$(PYTHON) -m pmemd memmap --root $(DEMO_MACHINE)
	$(PYTHON) -m pmemd plan --root $(DEMO_MACHINE) --config $(DEMO_CONFIG) || [ $$? -eq 4 ]

# The same job on a real Debian 12 guest under qemu (root; tests/vm/demo.py): builds the .deb,
# boots the guest from its own GRUB, lets pmemd reconcile and reboot it, shows the DAX mounts.
.PHONY: demo-vm
demo-vm:
	$(PYTHON) -m tests.vm.demo

check: lint typecheck architecture test ansible-test ansible-role

lint:
	$(PYTHON) -m ruff check .

typecheck:
	$(PYTHON) -m mypy

# Who may import whom: the contracts in pyproject.toml ([tool.importlinter]), by import-linter.
architecture:
	$(PYTHON) -c 'import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command(["--no-cache"]))'

# The guests' tests and the others in two lanes of pytest processes at once (tests/suite.py).
test:
	$(PYTHON) -m tests.suite

# Packaging (packaging/, docs/man/): man pages rendered from docs/man/*.rst, the .deb (with
# lintian) and the .rpm, all under build/. The tests in tests/packaging/ run these too.
RST2MAN ?= rst2man
MAN_PAGES := $(patsubst docs/man/%.rst,build/man/%,$(wildcard docs/man/*.rst))

.PHONY: man deb rpm

man: $(MAN_PAGES)

build/man/%: docs/man/%.rst
	@mkdir -p build/man
	$(RST2MAN) --strict $< $@

# The Ansible collection pmemd.pmemd (ansible/): ansible-test sanity and units with a pinned
# ansible-core in a venv under build/ (ANSIBLE_CORE=2.14.18 by default, Debian 12's);
# ansible-role runs the example playbook on this machine against pmemd serve on a private
# bus (nothing reboots); ansible-fixtures captures again what the unit tests' busctl answers
# are made of. `make check` (./run tests) runs the first two after the pytest suite.
ANSIBLE_CORE ?= 2.14.18

.PHONY: ansible-test ansible-role ansible-fixtures

ansible-test:
	ANSIBLE_CORE=$(ANSIBLE_CORE) ansible/run-ansible-test all

ansible-role:
	$(PYTHON) -m tests.ansible.role "$$(ANSIBLE_CORE=$(ANSIBLE_CORE) ansible/run-ansible-test venv)/bin/ansible-playbook"

ansible-fixtures:
	$(PYTHON) -m tests.ansible.capture

deb:
	packaging/build-deb
	lintian --fail-on error,warning --info build/deb/*.changes

rpm:
	packaging/build-rpm

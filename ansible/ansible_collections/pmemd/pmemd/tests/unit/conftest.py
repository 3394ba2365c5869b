# -*- coding: utf-8 -*-
# Copyright (c) pmemd contributors
# MIT License (see LICENSE in the pmemd repository)
"""Running a module of the collection in-process against a script of busctl answers.

Each answer is a fixture of ``tests/unit/fixtures/busctl/``: what busctl printed when
called with the same command line against the real pmemd service (captured by
``python -m tests.ansible.capture`` in the pmemd repository). A module must make exactly
the calls of its script, in order, with exactly the captured command lines; any other
call fails the test.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import json
import os

import pytest
from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures', 'busctl')


def busctl_fixture(name):
    with open(os.path.join(FIXTURES, name + '.json')) as handle:
        return json.load(handle)


class Exit(Exception):
    def __init__(self, result):
        super(Exit, self).__init__(result)
        self.result = result


class Failed(Exception):
    def __init__(self, result):
        super(Failed, self).__init__(result.get('msg'))
        self.result = result


def _exit_json(self, **result):
    raise Exit(result)


def _fail_json(self, msg, **result):
    result['msg'] = msg
    raise Failed(result)


@contextlib.contextmanager
def module_args(args):
    """The module's arguments, as each ansible-core version lets tests give them."""
    try:
        from ansible.module_utils.testing import patch_module_args
    except ImportError:  # ansible-core before 2.19
        old = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = to_bytes(json.dumps({'ANSIBLE_MODULE_ARGS': args}))
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = old
    else:
        with patch_module_args(args):
            yield


class Host:
    """The managed host as the module sees it: the commands it runs (answered from the
    script), and which programs exist."""

    def __init__(self):
        self.script = []
        self.calls = []  # (argv, environ_update) as run
        self.missing = set()  # programs get_bin_path does not find
        self.warnings = []  # module.warn()

    def expect(self, *answers):
        """Answers in order: a fixture's name, or ``(argv, (rc, stdout, stderr))``."""
        self.script.extend(answers)

    def run_command(self, argv, environ_update=None, **_options):
        self.calls.append((list(argv), environ_update))
        assert self.script, 'unexpected call: %r' % (argv,)
        answer = self.script.pop(0)
        if isinstance(answer, tuple):
            expected, reply = answer
            assert list(argv) == expected, (argv, expected)
            return reply
        captured = busctl_fixture(answer)
        expected = captured['argv']
        assert len(argv) == len(expected), (answer, argv, expected)
        assert os.path.basename(argv[0]) == expected[0], (answer, argv[0])
        for got, want in zip(argv[1:], expected[1:]):
            assert got == want, (answer, got, want)
        if expected[0] == 'busctl':
            # the debug log is where busctl names the error of a failed call
            assert environ_update and environ_update.get('SYSTEMD_LOG_LEVEL') == 'debug'
        return captured['rc'], captured['stdout'], captured['stderr']

    def get_bin_path(self, name, required=False, opt_dirs=None):
        if name in self.missing:
            assert not required, name
            return None
        return '/usr/bin/' + name

    def done(self):
        assert not self.script, 'calls not made: %r' % (self.script,)


@pytest.fixture
def host(monkeypatch):
    fake = Host()
    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', _exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', _fail_json)
    monkeypatch.setattr(basic.AnsibleModule, 'run_command',
                        lambda self, argv, **kw: fake.run_command(argv, **kw))
    monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path',
                        lambda self, name, required=False, opt_dirs=None:
                        fake.get_bin_path(name, required))
    monkeypatch.setattr(basic.AnsibleModule, 'warn', lambda self, text: fake.warnings.append(text))
    return fake


@pytest.fixture
def captured():
    """``captured(name)``: a busctl fixture (``argv``, ``rc``, ``stdout``, ``stderr``)."""
    return busctl_fixture


@pytest.fixture
def run_module(host):
    """``run_module(module, args, check_mode=False, diff=False)``: ``('exit'|'failed',
    result)`` once the module ends; every scripted call must have been made."""
    def run(module, args, check_mode=False, diff=False):
        args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
        outcome = None
        with module_args(args):
            try:
                module.main()
            except Exit as done:
                outcome = ('exit', done.result)
            except Failed as failed:
                outcome = ('failed', failed.result)
        assert outcome is not None, 'the module returned without exit_json or fail_json'
        host.done()
        return outcome
    return run

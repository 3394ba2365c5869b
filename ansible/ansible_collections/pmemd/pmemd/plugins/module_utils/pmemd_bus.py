# -*- coding: utf-8 -*-
# Copyright (c) pmemd contributors
# MIT License (see LICENSE in the pmemd repository)
"""Talking to pmemd's D-Bus service ``io.pmemd1`` on the managed host through systemd's
``busctl`` (``--json=short``), the one D-Bus client every systemd host has.

Nothing here imports Ansible or pmemd: a caller gives :class:`Bus` a ``run(argv,
environ_update)`` function returning ``(rc, stdout, stderr)`` (an Ansible module passes
``module.run_command``). The names below are the wire contract of ``pmemd/service/api.py``
in the pmemd repository (the collection's unit tests hold them against busctl output
captured from the real service).

``busctl call`` prints only an error's text, not its name; with ``SYSTEMD_LOG_LEVEL=debug``
sd-bus also logs every message it receives, and the error reply's line carries the name
(``Got message type=error ... error-name=NAME error-message=TEXT``). Where that line is
missing (a busctl that does not log it), the error keeps its text and has no name.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

BUS_NAME = 'io.pmemd1'
MANAGER_PATH = '/io/pmemd1'
MANAGER_INTERFACE = 'io.pmemd1.Manager'
REGION_INTERFACE = 'io.pmemd1.Region'
PROPERTIES_INTERFACE = 'org.freedesktop.DBus.Properties'
# The file name Validate() and PlanConfig() locate problems in (the text they check has none
# of its own).
VALIDATE_SOURCE = '<input>'

INVALID_CONFIG = 'io.pmemd1.Error.InvalidConfig'
BUSY = 'io.pmemd1.Error.Busy'
# The reply of a service without the method (a pmemd older than the call).
UNKNOWN_METHOD = 'org.freedesktop.DBus.Error.UnknownMethod'
NOT_ALLOWED = ('org.freedesktop.DBus.Error.AccessDenied',
               'org.freedesktop.DBus.Error.InteractiveAuthorizationRequired')
SERVICE_ABSENT = ('org.freedesktop.DBus.Error.ServiceUnknown',
                  'org.freedesktop.DBus.Error.NameHasNoOwner')
NO_ANSWER = ('org.freedesktop.DBus.Error.NoReply', 'org.freedesktop.DBus.Error.Timeout')

QUERY_TIMEOUT = 25  # seconds: busctl's own default
CHANGE_TIMEOUT = 900  # a change may run the bootloader's tool (pmemctl's default too)
# The kernel refuses a single argument longer than this (MAX_ARG_STRLEN, 32 pages).
MAX_ARGUMENT = 32 * 4096 - 1

# busctl logs each message it receives (and errors) on standard error, never the journal.
DEBUG_ENVIRONMENT = {
    'SYSTEMD_LOG_LEVEL': 'debug',
    'SYSTEMD_LOG_TARGET': 'console',
    'SYSTEMD_LOG_COLOR': '0',
    'SYSTEMD_LOG_LOCATION': '0',
    'SYSTEMD_LOG_TIME': '0',
}
_ERROR_LINE = re.compile(r'^Got message type=error .*? error-name=(\S+) error-message=', re.M)
_CALL_FAILED = 'Call failed: '


class BusError(Exception):
    """A failed call: the D-Bus error ``name`` (``''`` when busctl did not say) and its
    ``text``."""

    def __init__(self, member, name, text):
        super(BusError, self).__init__(text)
        self.member = member
        self.name = name
        self.text = text

    @property
    def denied(self):
        return self.name in NOT_ALLOWED or (not self.name and 'access denied' in
                                            self.text.lower())

    @property
    def invalid_config(self):
        return self.name == INVALID_CONFIG

    @property
    def absent(self):
        return self.name in SERVICE_ABSENT

    def describe(self):
        """What the failure means to the person running the play."""
        if self.absent:
            return ('the pmemd service (%s) is not available on the system bus: %s. Is pmemd '
                    'installed? See "systemctl status pmemd.service".' % (BUS_NAME, self.text))
        if self.denied:
            return ('access denied: %s refused %s (%s). Run the task as root (become: true) or '
                    'let this user have the polkit action io.pmemd1.manage.'
                    % (BUS_NAME, self.member, self.text))
        if self.name in NO_ANSWER:
            return 'the pmemd service did not answer %s in time: %s' % (self.member, self.text)
        if self.invalid_config or self.name.startswith('io.pmemd1.') or not self.name:
            return self.text
        return '%s failed: %s (%s)' % (self.member, self.text, self.name)


def wire_argument(value):
    """A method argument as busctl reads it from its command line."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return '%s' % (value,)


def busctl_argv(busctl, path, interface, member, signature='', args=(),
                timeout=QUERY_TIMEOUT):
    """The command line of one method call. ``--`` ends busctl's options, so that an
    argument starting with ``-`` (a YAML document's ``---``) stays an argument."""
    argv = [busctl, '--system', '--json=short', '--allow-interactive-authorization=no',
            '--timeout=%d' % timeout, '--', 'call', BUS_NAME, path, interface, member]
    if signature:
        argv.append(signature)
        argv.extend(wire_argument(a) for a in args)
    return argv


def parse_error(stderr):
    """``(name, text)`` of the error reply described on busctl's standard error."""
    found = _ERROR_LINE.search(stderr)
    if found is None:
        start = stderr.find(_CALL_FAILED)
        if start < 0:  # not the call: the bus itself (connecting, authenticating)
            lines = [ln for ln in stderr.splitlines() if ln.startswith('Failed to ')]
            return '', (lines[-1] if lines else stderr.strip())
        return '', stderr[start + len(_CALL_FAILED):].rstrip('\n')
    name, rest = found.group(1), stderr[found.end():]
    # rest is TEXT "\nCall failed: " TEXT "\n" and sd-bus's closing lines; TEXT may hold
    # newlines of its own, so it is the prefix that the "Call failed" line repeats.
    marker = '\n' + _CALL_FAILED
    cut = rest.find(marker)
    first = cut
    while cut >= 0:
        text = rest[:cut]
        if rest.startswith(text + '\n', cut + len(marker)):
            return name, text
        cut = rest.find(marker, cut + 1)
    return name, (rest[:first] if first >= 0 else rest).rstrip('\n')


def parse_reply(stdout):
    """The values of a method reply printed by ``busctl --json=short`` (a list: one per
    out-argument; empty for a method that returns nothing)."""
    if not stdout.strip():
        return []
    reply = json.loads(stdout)
    return reply['data']


def properties(variants):
    """``a{sv}`` as busctl prints it (``{name: {"type": T, "data": V}}``) → ``{name: V}``."""
    return dict((name, value['data']) for name, value in variants.items())


def warning_rows(rows):
    """``a(sss)`` (Validate, the Warnings property) → dictionaries."""
    return [{'code': code, 'region': region or None, 'message': message}
            for code, region, message in rows]


def problem_rows(rows):
    """``a(sssuu)`` (the Problems property) → dictionaries, with the text pmemd shows."""
    out = []
    for message, key, path, line, column in rows:
        where = '%s:%d:%d: ' % (path, line, column) if path else ''
        out.append({'message': message, 'key': key, 'file': path or None, 'line': line,
                    'column': column,
                    'text': '%s%s%s' % (where, key + ': ' if key else '', message)})
    return out


def module_runner(module):
    """:class:`Bus`'s ``run`` for an Ansible module: its ``run_command``."""
    def run(argv, environ_update):
        return module.run_command(argv, environ_update=environ_update)
    return run


class Bus:
    """Method calls to ``io.pmemd1`` through busctl."""

    def __init__(self, run, busctl='busctl', timeout=QUERY_TIMEOUT,
                 change_timeout=CHANGE_TIMEOUT):
        self.run = run
        self.busctl = busctl
        self.timeout = timeout
        self.change_timeout = change_timeout

    def call(self, path, interface, member, signature='', args=(), timeout=None):
        for arg in args:
            if not isinstance(arg, bool) and len(('%s' % arg).encode('utf-8')) > MAX_ARGUMENT:
                raise BusError(member, '', 'the argument is larger than a command line can '
                               'carry to busctl (%d bytes)' % MAX_ARGUMENT)
        argv = busctl_argv(self.busctl, path, interface, member, signature, args,
                           timeout or self.timeout)
        rc, stdout, stderr = self.run(argv, DEBUG_ENVIRONMENT)
        if rc != 0:
            name, text = parse_error(stderr)
            raise BusError(member, name, text)
        try:
            return parse_reply(stdout)
        except (ValueError, KeyError, TypeError):
            raise BusError(member, '', 'busctl printed no JSON reply: %r' % stdout[:200]) from None

    def manager_properties(self):
        [variants] = self.call(MANAGER_PATH, PROPERTIES_INTERFACE, 'GetAll', 's',
                               [MANAGER_INTERFACE])
        return properties(variants)

    def region_properties(self, path):
        [variants] = self.call(path, PROPERTIES_INTERFACE, 'GetAll', 's', [REGION_INTERFACE])
        return properties(variants)

    def list_regions(self):
        """``ListRegions``: ``[{'name', 'path', ...}]`` in the config's order."""
        [rows] = self.call(MANAGER_PATH, MANAGER_INTERFACE, 'ListRegions')
        keys = ('name', 'path', 'offset', 'size', 'device', 'mountpoint', 'fstype', 'state')
        return [dict(zip(keys, row)) for row in rows]

    def validate(self, text):
        """The warnings for config ``text``; :class:`BusError` (``invalid_config``) with
        every problem located in ``<input>`` when it is not valid."""
        [rows] = self.call(MANAGER_PATH, MANAGER_INTERFACE, 'Validate', 's', [text])
        return warning_rows(rows)

    def plan(self):
        """``GetPlan``: the ``pmemd plan --json`` document for the config on disk."""
        [text] = self.call(MANAGER_PATH, MANAGER_INTERFACE, 'GetPlan')
        return json.loads(text)

    def plan_config(self, text):
        """``PlanConfig``: the document :meth:`plan` would return if config ``text`` were
        the config on disk; nothing is written. :class:`BusError` as :meth:`validate`."""
        [document] = self.call(MANAGER_PATH, MANAGER_INTERFACE, 'PlanConfig', 's', [text])
        return json.loads(document)

    def set_config(self, text, apply):
        """``SetConfig``: validate, replace the config atomically (and apply); the new
        State."""
        [state] = self.call(MANAGER_PATH, MANAGER_INTERFACE, 'SetConfig', 'sb', [text, apply],
                            timeout=self.change_timeout)
        return state

    def apply(self, dry_run):
        """``Apply`` (``pmemd reconcile [--dry-run]``): ``(state, report lines)``."""
        state, report = self.call(MANAGER_PATH, MANAGER_INTERFACE, 'Apply', 'b', [dry_run],
                                  timeout=self.change_timeout)
        return state, report

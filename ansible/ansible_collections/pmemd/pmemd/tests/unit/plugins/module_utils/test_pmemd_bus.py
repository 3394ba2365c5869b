# -*- coding: utf-8 -*-
# Copyright (c) pmemd contributors
# MIT License (see LICENSE in the pmemd repository)
"""Reading busctl's answers: replies, and errors by name and text (captured from the real
service, see tests/unit/conftest.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible_collections.pmemd.pmemd.plugins.module_utils.pmemd_bus import (
    MAX_ARGUMENT,
    Bus,
    BusError,
    busctl_argv,
    parse_error,
    parse_reply,
    properties,
)

BAD_SIZE = ("<input>:6:12: regions[0].size: '3X' is not a size: unexpected 'X' after '3' "
            "(suffixes are K, M, G, T, P, E)\n        size: 3X\n               ^")


def without_debug_log(stderr):
    """What a busctl that does not log received messages prints: its "Call failed" line
    (and the lines of the error's text), without sd-bus's debug lines around it."""
    own = stderr[stderr.index('Call failed: '):]
    return ''.join(line for line in own.splitlines(True) if not line.startswith('Bus '))


def test_an_invalid_config_is_named_and_keeps_its_located_lines(captured):
    assert parse_error(captured('validate-bad-size')['stderr']) == (
        'io.pmemd1.Error.InvalidConfig', BAD_SIZE)


def test_access_denied_keeps_the_services_reason_over_busctls_short_text(captured):
    # busctl's own line says only "Access denied"; the reply's text says why
    name, text = parse_error(captured('setconfig-denied')['stderr'])
    assert name == 'org.freedesktop.DBus.Error.AccessDenied'
    assert text == ("not allowed to change pmemd's configuration and the kernel command line: "
                    "polkit is not running on the system bus, so only root may do this")
    assert BusError('SetConfig', name, text).denied


def test_no_service_is_named(captured):
    name, text = parse_error(captured('service-absent')['stderr'])
    assert name == 'org.freedesktop.DBus.Error.ServiceUnknown'
    assert text == 'The name io.pmemd1 was not provided by any .service files'
    assert BusError('GetAll', name, text).absent


def test_a_text_that_holds_a_call_failed_line_of_its_own_is_kept_whole():
    text = 'first line\nCall failed: not the end\nlast line'
    stderr = ('Got message type=error sender=:1.1 destination=:1.8 path=n/a interface=n/a '
              'member=n/a cookie=9 reply_cookie=2 signature=s '
              'error-name=io.pmemd1.Error.Failed error-message=%s\nCall failed: %s\n'
              'Bus busctl: changing state RUNNING → CLOSED\n' % (text, text))
    assert parse_error(stderr) == ('io.pmemd1.Error.Failed', text)


def test_without_the_debug_log_the_text_is_kept_and_the_name_is_unknown(captured):
    stderr = without_debug_log(captured('validate-bad-size')['stderr'])
    assert stderr.startswith('Call failed: ')
    assert parse_error(stderr) == ('', BAD_SIZE)
    denied = parse_error(without_debug_log(captured('setconfig-denied')['stderr']))
    assert denied == ('', 'Access denied')
    assert BusError('SetConfig', *denied).denied


def test_a_bus_that_cannot_be_reached_says_so():
    assert parse_error('Failed to connect to bus: No such file or directory\n') == (
        '', 'Failed to connect to bus: No such file or directory')


def test_replies_are_the_out_arguments(captured):
    [rows] = parse_reply(captured('list-regions-changes-pending')['stdout'])
    assert [row[0] for row in rows] == ['data', 'fast-log']
    state, report = parse_reply(captured('apply-changes-pending')['stdout'])
    assert state == 'reboot-required' and 'Wrote /etc/kernel/cmdline' in report
    assert parse_reply(captured('reload')['stdout']) == []  # no out-argument
    [variants] = parse_reply(captured('manager-converged')['stdout'])
    props = properties(variants)
    assert (props['State'], props['RebootRequired'], props['Trial']) == ('converged', False,
                                                                         'none')


def test_the_command_line_ends_busctls_options_before_the_call():
    argv = busctl_argv('busctl', '/io/pmemd1', 'io.pmemd1.Manager', 'SetConfig', 'sb',
                       ['--- \nversion: 1\n', True], timeout=900)
    assert argv == ['busctl', '--system', '--json=short',
                    '--allow-interactive-authorization=no', '--timeout=900', '--', 'call',
                    'io.pmemd1', '/io/pmemd1', 'io.pmemd1.Manager', 'SetConfig', 'sb',
                    '--- \nversion: 1\n', 'true']


def test_an_argument_too_long_for_a_command_line_is_refused_before_busctl_runs():
    def run(argv, environ):
        raise AssertionError('busctl ran')

    with pytest.raises(BusError) as raised:
        Bus(run).validate('#' * (MAX_ARGUMENT + 1))
    assert 'larger than a command line can carry' in raised.value.text


def test_what_each_failure_means_to_the_person_running_the_play():
    assert BusError('Apply', 'org.freedesktop.DBus.Error.NoReply', 'timed out').describe() == (
        'the pmemd service did not answer Apply in time: timed out')
    assert BusError('Apply', 'io.pmemd1.Error.CommandFailed', 'update-grub failed: …'
                    ).describe() == 'update-grub failed: …'
    assert BusError('GetAll', 'org.freedesktop.DBus.Error.UnknownMethod', 'no such method'
                    ).describe() == 'GetAll failed: no such method (org.freedesktop.DBus.Error.UnknownMethod)'

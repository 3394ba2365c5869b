# -*- coding: utf-8 -*-
# Copyright (c) pmemd contributors
# MIT License (see LICENSE in the pmemd repository)
"""Reading plan documents captured from the real service (GetPlan) and from pmemd plan."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest
from ansible_collections.pmemd.pmemd.plugins.module_utils.pmemd_plan import (
    memmap_options,
    next_boot_options,
    options_after,
    reboot_after_changes,
    reboot_would_help,
)


@pytest.fixture
def plan(captured):
    def read(name):
        stdout = captured(name)['stdout']
        return json.loads(json.loads(stdout)['data'][0])
    return read


def test_pmemds_options_of_a_command_line():
    assert memmap_options('root=/dev/sda1 ro memmap=512M!1G quiet nokaslr memmap=1G$4G') == [
        'memmap=512M!1G', 'nokaslr', 'memmap=1G$4G']
    assert memmap_options(None) == []


def test_a_region_to_add(plan):
    pending = plan('plan-changes-pending')
    assert next_boot_options(pending) == ['memmap=512M!1G']  # the boot entry's
    assert options_after(pending) == ['memmap=512M!1G', 'memmap=256M!1536M']
    assert reboot_after_changes(pending) is True  # fast-log is not on the running kernel


def test_a_region_to_remove_that_the_running_kernel_never_had(plan):
    removal = plan('planconfig-one-region-from-reboot-required')
    assert next_boot_options(removal) == ['memmap=512M!1G', 'memmap=256M!1536M']
    assert options_after(removal) == ['memmap=512M!1G']
    assert reboot_after_changes(removal) is False


def test_nothing_to_change(plan):
    converged = plan('plan-converged')
    assert next_boot_options(converged) == options_after(converged) == ['memmap=512M!1G']
    assert reboot_after_changes(converged) is False
    assert reboot_after_changes(plan('plan-reboot-required')) is True


def test_a_region_removed_that_the_running_kernel_still_has(plan):
    # the running kernel carries fast-log's option, which pmemd wrote and now takes off
    removal = plan('plan-remove-pending')
    removal['running'] = ['memmap=512M!1G', 'memmap=256M!1536M']
    assert reboot_after_changes(removal) is True


def test_nokaslr_added_needs_a_reboot(plan):
    converged = plan('plan-converged')
    converged['state'] = 'changes-pending'
    converged['changes'].append({'action': 'add', 'argument': 'nokaslr', 'reason': 'kaslr'})
    assert options_after(converged) == ['memmap=512M!1G', 'nokaslr']
    assert reboot_after_changes(converged) is True


def test_without_a_bootloader_the_running_command_line_is_the_reference(plan):
    pending = plan('plan-changes-pending')
    pending['bootloader']['next_boot'] = None
    pending['running'] = ['memmap=512M!1G']
    assert next_boot_options(pending) == ['memmap=512M!1G']


@pytest.mark.parametrize('state, trial, running_differs, expected', [
    ('reboot-required', 'none', True, True),       # the boot configuration carries it
    ('reboot-required', 'committed', True, True),
    ('changes-pending', 'armed', True, True),      # the trial boot carries it
    ('changes-pending', 'none', True, False),      # not applied: the next boot is this one
    ('changes-pending', 'failed', True, False),    # the trial failed: held, not retried
    ('changes-pending', 'running', True, False),   # this is the trial boot, being verified
    ('converged', 'none', False, False),
    ('converged', 'committed', False, False),
    ('degraded', 'none', False, False),
])
def test_whether_a_reboot_would_help(state, trial, running_differs, expected):
    props = {'State': state, 'Trial': trial, 'RebootRequired': running_differs}
    assert reboot_would_help(props) is expected

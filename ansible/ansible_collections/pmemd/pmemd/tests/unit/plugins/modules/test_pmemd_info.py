# -*- coding: utf-8 -*-
# Copyright (c) pmemd contributors
# MIT License (see LICENSE in the pmemd repository)
"""pmemd_info against busctl answers captured from the real service (see conftest.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible_collections.pmemd.pmemd.plugins.modules import pmemd_info

BOOT_WAIT = ['/usr/bin/timeout', '600', '/usr/bin/systemctl', 'is-system-running', '--wait']


class Clock:
    """time.time and time.sleep for the module: sleeping moves the clock."""

    def __init__(self):
        self.now = 1000.0
        self.slept = []

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(pmemd_info, 'time', fake)
    return fake


@pytest.fixture
def with_trial(captured):
    """A captured GetAll of the Manager with its Trial property set to ``trial`` (a trial
    boot cannot run on the capture's machine, which never reboots)."""
    return lambda name, trial: _with_trial(captured(name), trial)


def _with_trial(captured, trial):
    stdout = captured['stdout'].replace('"Trial":{"type":"s","data":"none"}',
                                        '"Trial":{"type":"s","data":"%s"}' % trial)
    assert stdout != captured['stdout']
    return (['/usr/bin/busctl', *captured['argv'][1:]], (0, stdout, captured['stderr']))


def test_a_converged_host_with_its_dax_region(host, run_module):
    host.expect('manager-converged', 'list-regions-converged', 'region-data')
    outcome, result = run_module(pmemd_info, {})
    assert outcome == 'exit' and result['changed'] is False
    facts = result['pmemd']
    assert (facts['state'], facts['reboot_required'], facts['trial']) == ('converged', False,
                                                                          'none')
    assert facts['bootloader'] == 'kernel-install'
    assert facts['desired_memmap'] == facts['current_memmap'] == ['memmap=512M!1G']
    assert facts['regions'] == [{
        'name': 'data', 'path': '/io/pmemd1/region/data', 'size': 512 << 20,
        'offset': 1 << 30, 'memmap': 'memmap=512M!1G', 'device': '/dev/pmem0',
        'mountpoint': '/pmem', 'filesystem_type': 'xfs', 'state': 'ready',
        'state_reason': 'pmem0 mounted at /pmem with DAX', 'dax': True}]
    assert [w['code'] for w in facts['warnings']] == ['kaslr']
    assert facts['warnings'][0]['region'] is None
    assert 'plan' not in facts and 'boot_state' not in facts


def test_a_region_waiting_for_its_reboot(host, run_module):
    host.expect('manager-changes-pending', 'list-regions-changes-pending', 'region-data',
                'region-fast-log')
    outcome, result = run_module(pmemd_info, {})
    assert outcome == 'exit'
    facts = result['pmemd']
    # pending and not applied, no trial armed: a reboot would not bring fast-log
    assert (facts['state'], facts['running_differs'], facts['reboot_required']) == (
        'changes-pending', True, False)
    data, fast_log = facts['regions']
    assert data['state'] == 'ready'
    assert (fast_log['name'], fast_log['device'], fast_log['state'], fast_log['dax']) == (
        'fast-log', '', 'missing', False)
    assert 'lacks memmap=256M!1536M: reboot' in fast_log['state_reason']


def test_a_degraded_host_says_which_region_and_why(host, run_module):
    host.expect('manager-degraded', 'list-regions-degraded', 'region-data-degraded')
    outcome, result = run_module(pmemd_info, {})
    assert outcome == 'exit'
    facts = result['pmemd']
    assert facts['state'] == 'degraded'
    [region] = facts['regions']
    assert (region['state'], region['mountpoint'], region['dax']) == ('not-mounted', '/pmem2',
                                                                      False)
    assert "/pmem2 is not mounted" in region['state_reason']


def test_an_invalid_config_shows_its_located_problems_and_no_plan(host, run_module):
    host.expect('manager-invalid-config', 'list-regions-invalid-config', 'plan-invalid-config')
    outcome, result = run_module(pmemd_info, {'plan': True})
    assert outcome == 'exit'
    facts = result['pmemd']
    assert (facts['state'], facts['regions'], facts['plan']) == ('invalid-config', [], None)
    [problem] = facts['problems']
    assert (problem['file'], problem['line'], problem['column'], problem['key']) == (
        '/etc/pmemd.yaml', 6, 12, 'regions[0].size')
    assert problem['text'].startswith("/etc/pmemd.yaml:6:12: regions[0].size: '3X' is not a "
                                      "size")
    assert facts['plan_error'].startswith('/etc/pmemd.yaml:6:12: regions[0].size')


def test_the_plan_when_asked_for(host, run_module):
    host.expect('manager-reboot-required', 'list-regions-converged', 'region-data',
                'plan-reboot-required')
    outcome, result = run_module(pmemd_info, {'plan': True})
    assert outcome == 'exit'
    plan = result['pmemd']['plan']
    assert plan['state'] == 'reboot-required'
    assert plan['bootloader']['backend'] == 'kernel-install'


def test_wait_follows_the_boot_and_the_trial_verification(host, run_module, clock,
                                                          with_trial):
    host.expect((BOOT_WAIT, (0, 'running\n', '')), with_trial('manager-converged', 'running'),
                with_trial('manager-converged', 'committed'), 'list-regions-converged',
                'region-data')
    outcome, result = run_module(pmemd_info, {'wait': True})
    assert outcome == 'exit'
    facts = result['pmemd']
    assert (facts['boot_state'], facts['trial'], facts['state']) == ('running', 'committed',
                                                                     'converged')
    assert clock.slept == [pmemd_info.POLL]


def test_wait_fails_when_the_boot_does_not_finish(host, run_module, clock):
    host.expect((BOOT_WAIT, (124, 'starting\n', '')))
    outcome, result = run_module(pmemd_info, {'wait': True})
    assert outcome == 'failed'
    assert result['msg'] == ('the boot did not finish within 600 s (systemctl '
                             'is-system-running: starting)')


def test_wait_fails_when_the_trial_is_still_being_verified_at_the_deadline(
        host, run_module, clock, with_trial):
    running = with_trial('manager-converged', 'running')
    wait = ['/usr/bin/timeout', '4', *BOOT_WAIT[2:]]
    host.expect((wait, (0, 'running\n', '')), running, running, running)
    outcome, result = run_module(pmemd_info, {'wait': True, 'timeout': 4})
    assert outcome == 'failed'
    assert result['msg'].startswith('pmemd was still verifying the trial boot after 4 s')
    assert clock.slept == [2, 2]


def test_a_degraded_boot_is_no_reason_to_keep_waiting(host, run_module, clock):
    host.expect((BOOT_WAIT, (1, 'degraded\n', '')), 'manager-degraded',
                'list-regions-degraded', 'region-data-degraded')
    outcome, result = run_module(pmemd_info, {'wait': True})
    assert outcome == 'exit'
    assert (result['pmemd']['boot_state'], result['pmemd']['state']) == ('degraded',
                                                                         'degraded')
    assert clock.slept == []


def test_no_service(host, run_module):
    host.expect('service-absent')
    outcome, result = run_module(pmemd_info, {})
    assert outcome == 'failed'
    assert 'Is pmemd installed?' in result['msg']

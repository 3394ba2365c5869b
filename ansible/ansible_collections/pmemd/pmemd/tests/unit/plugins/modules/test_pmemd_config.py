# -*- coding: utf-8 -*-
# Copyright (c) pmemd contributors
# MIT License (see LICENSE in the pmemd repository)
"""pmemd_config against busctl answers captured from the real service (see conftest.py).

The machine of the captures (examples/machines/qemu-2g-pmem in the pmemd repository, with
systemd-boot): region ``data`` (512M at 1G) is booted and mounted with DAX; ``fast-log``
(256M at 1536M) is configured but not booted.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible_collections.pmemd.pmemd.plugins.module_utils.pmemd_bus import BUSY, BusError
from ansible_collections.pmemd.pmemd.plugins.module_utils.pmemd_render import render_config
from ansible_collections.pmemd.pmemd.plugins.modules import pmemd_config

CONFIG_PATH = '/etc/pmemd.yaml'
DATA = {'name': 'data', 'size': '512M', 'offset': '1G',
        'filesystem': {'type': 'xfs', 'mountpoint': '/pmem'}}
FAST_LOG = {'name': 'fast-log', 'size': '256M', 'offset': '1536M',
            'filesystem': {'type': 'ext4', 'mountpoint': '/pmem-log', 'options': ['noatime'],
                           'on-boot': 'keep'}}
TWO_REGIONS = render_config([DATA, FAST_LOG])
ONE_REGION = render_config([DATA])
KASLR_WARNING = 'KASLR is on and this machine has 2 GiB of RAM'


@pytest.fixture
def disk(monkeypatch):
    """The config file on the host, as the module reads it (``None``: no file)."""
    files = {CONFIG_PATH: None}
    monkeypatch.setattr(pmemd_config, 'read_config_file', lambda path: files[path])
    return files


def test_unchanged_config_on_a_converged_host_changes_nothing(host, run_module, disk):
    disk[CONFIG_PATH] = ONE_REGION
    host.expect('manager-converged', 'validate-one-region', 'plan-converged',
                'manager-converged')
    outcome, result = run_module(pmemd_config, {'regions': [DATA]}, diff=True)
    assert outcome == 'exit'
    assert result['changed'] is False
    assert (result['state'], result['reboot_required']) == ('converged', False)
    assert result['memmap'] == {'before': ['memmap=512M!1G'], 'after': ['memmap=512M!1G']}
    assert result['report'] == []
    config_diff, memmap_diff = result['diff']
    assert config_diff['before'] == config_diff['after'] == ONE_REGION
    assert memmap_diff['before'] == memmap_diff['after'] == 'memmap=512M!1G\n'


def test_pending_boot_change_is_applied_and_a_reboot_is_required(host, run_module, disk):
    disk[CONFIG_PATH] = TWO_REGIONS
    host.expect('manager-changes-pending', 'validate-two-regions', 'plan-changes-pending',
                'apply-changes-pending', 'manager-reboot-required', 'plan-reboot-required')
    outcome, result = run_module(pmemd_config, {'regions': [DATA, FAST_LOG]}, diff=True)
    assert outcome == 'exit'
    assert result['changed'] is True
    assert (result['state'], result['reboot_required']) == ('reboot-required', True)
    assert 'Wrote /etc/kernel/cmdline' in result['report']
    assert result['memmap'] == {'before': ['memmap=512M!1G'],
                                'after': ['memmap=512M!1G', 'memmap=256M!1536M']}
    memmap_diff = result['diff'][1]
    assert memmap_diff['after'] == 'memmap=512M!1G\nmemmap=256M!1536M\n'
    assert [w['code'] for w in result['pmemd_warnings']] == ['kaslr']
    assert any(KASLR_WARNING in w for w in host.warnings)


def test_check_mode_reports_the_pending_change_with_a_dry_run(host, run_module, disk):
    disk[CONFIG_PATH] = TWO_REGIONS
    # Apply(dry_run=true) and no change: the script has no SetConfig, no Apply(false)
    host.expect('manager-changes-pending', 'validate-two-regions', 'plan-changes-pending',
                'apply-dry-run-changes-pending')
    outcome, result = run_module(pmemd_config, {'regions': [DATA, FAST_LOG]}, check_mode=True)
    assert outcome == 'exit'
    assert result['changed'] is True
    assert result['state'] == 'changes-pending'
    assert result['reboot_required'] is True  # fast-log is not on the running kernel
    assert result['memmap']['after'] == ['memmap=512M!1G', 'memmap=256M!1536M']
    assert any('memmap=256M!1536M' in line for line in result['report'])
    assert 'diff' not in result  # not asked for


def test_new_config_is_written_then_applied(host, run_module, disk):
    disk[CONFIG_PATH] = TWO_REGIONS
    host.expect('manager-reboot-required', 'validate-one-region', 'plan-reboot-required',
                'setconfig-one-region', 'plan-remove-pending', 'apply-remove-pending',
                'manager-converged', 'plan-converged')
    outcome, result = run_module(pmemd_config, {'regions': [DATA]}, diff=True)
    assert outcome == 'exit'
    assert result['changed'] is True
    assert (result['state'], result['reboot_required']) == ('converged', False)
    assert result['config'] == ONE_REGION
    assert result['memmap'] == {'before': ['memmap=512M!1G', 'memmap=256M!1536M'],
                                'after': ['memmap=512M!1G']}
    config_diff, memmap_diff = result['diff']
    assert (config_diff['before'], config_diff['after']) == (TWO_REGIONS, ONE_REGION)
    assert config_diff['after_header'] == CONFIG_PATH
    assert memmap_diff['before'] == 'memmap=512M!1G\nmemmap=256M!1536M\n'
    assert memmap_diff['after'] == 'memmap=512M!1G\n'
    assert result['plan']['state'] == 'converged'
    assert [c['action'] for c in result['plan']['changes']] == ['keep']


def test_check_mode_plans_a_new_config_with_the_service_and_writes_nothing(
        host, run_module, disk):
    disk[CONFIG_PATH] = TWO_REGIONS
    # no SetConfig, no Apply: the service plans the new config (PlanConfig) without writing
    host.expect('manager-reboot-required', 'validate-one-region', 'plan-reboot-required',
                'planconfig-one-region-from-reboot-required')
    outcome, result = run_module(pmemd_config, {'regions': [DATA]}, check_mode=True,
                                 diff=True)
    assert outcome == 'exit'
    assert result['changed'] is True
    assert result['state'] == 'changes-pending'
    # the boot entry loses fast-log's option, which the running kernel never had
    assert result['reboot_required'] is False
    assert result['memmap'] == {'before': ['memmap=512M!1G', 'memmap=256M!1536M'],
                                'after': ['memmap=512M!1G']}
    assert result['plan']['desired'] == ['memmap=512M!1G']
    assert result['report'] == []  # Apply's dry run would plan the old file: not asked
    assert result['diff'][0]['after'] == ONE_REGION
    assert not any('not known in check mode' in w for w in host.warnings)


def test_check_mode_with_a_service_without_plan_config_still_says_the_config_changes(
        host, run_module, captured, disk):
    disk[CONFIG_PATH] = TWO_REGIONS
    # a pmemd before PlanConfig answers it as the service answers a member it lacks
    argv = list(captured('planconfig-one-region-from-reboot-required')['argv'])
    argv[0] = '/usr/bin/busctl'
    unknown = captured('unknown-method')
    host.expect('manager-reboot-required', 'validate-one-region', 'plan-reboot-required',
                (argv, (unknown['rc'], unknown['stdout'], unknown['stderr'])))
    outcome, result = run_module(pmemd_config, {'regions': [DATA]}, check_mode=True,
                                 diff=True)
    assert outcome == 'exit'
    assert result['changed'] is True
    assert (result['state'], result['plan']) == ('unknown', None)
    assert result['memmap']['after'] is None
    assert len(result['diff']) == 1  # the config only: the next boot is not known
    assert any('the pmemd service on the host has no PlanConfig' in w for w in host.warnings)


def test_invalid_config_fails_with_pmemds_located_problems(host, run_module, disk):
    disk[CONFIG_PATH] = TWO_REGIONS
    host.expect('manager-changes-pending', 'validate-bad-size')
    outcome, result = run_module(pmemd_config, {'regions': [dict(DATA, size='3X')]})
    assert outcome == 'failed'
    assert result.get('changed', False) is False
    located = ("/etc/pmemd.yaml:6:12: regions[0].size: '3X' is not a size: unexpected 'X' "
               "after '3' (suffixes are K, M, G, T, P, E)")
    assert located in result['msg']
    assert result['problems'] == [located, '        size: 3X', '               ^']
    assert result['config'].splitlines()[5] == '    size: 3X'  # the line it points at


def test_a_config_too_large_for_the_machine_is_refused_by_the_service(host, run_module, disk):
    disk[CONFIG_PATH] = TWO_REGIONS
    host.expect('manager-changes-pending', 'validate-too-big')
    outcome, result = run_module(pmemd_config, {'regions': [{'name': 'big', 'size': '4G'}]})
    assert outcome == 'failed'
    assert result['problems'][0].startswith('/etc/pmemd.yaml:')
    assert 'big' in result['msg']


def test_access_denied_fails_clearly_and_changes_nothing(host, run_module, disk):
    disk[CONFIG_PATH] = TWO_REGIONS
    host.expect('manager-changes-pending', 'validate-one-region', 'plan-changes-pending',
                'setconfig-denied')
    outcome, result = run_module(pmemd_config, {'regions': [DATA]})
    assert outcome == 'failed'
    assert result['msg'].startswith('access denied: io.pmemd1 refused SetConfig (not allowed '
                                    "to change pmemd's configuration")
    assert 'become: true' in result['msg']
    assert result['error'] == 'org.freedesktop.DBus.Error.AccessDenied'
    assert result['changed'] is False  # the file is as it was


def test_no_service_fails_saying_so(host, run_module, disk):
    host.expect('service-absent')
    outcome, result = run_module(pmemd_config, {'regions': [DATA]})
    assert outcome == 'failed'
    assert 'pmemd service (io.pmemd1) is not available' in result['msg']
    assert 'was not provided by any .service files' in result['msg']
    assert result['error'] == 'org.freedesktop.DBus.Error.ServiceUnknown'


def test_content_is_sent_as_it_is_even_when_it_starts_with_dashes(host, run_module, disk):
    disk[CONFIG_PATH] = ONE_REGION
    text = '---\n' + ONE_REGION
    host.expect('manager-converged', 'validate-dashes', 'plan-converged', 'planconfig-dashes')
    outcome, result = run_module(pmemd_config, {'content': text}, check_mode=True)
    assert outcome == 'exit'
    assert result['changed'] is True  # the text differs, the plan does not
    assert result['state'] == 'converged'
    assert result['memmap']['before'] == result['memmap']['after'] == ['memmap=512M!1G']


def test_content_and_regions_exclude_each_other(host, run_module, disk):
    outcome, result = run_module(pmemd_config, {'content': ONE_REGION, 'regions': [DATA]})
    assert outcome == 'failed'
    assert 'mutually exclusive' in result['msg']
    assert host.calls == []


def test_a_value_that_has_no_place_in_the_file_fails_before_any_change(host, run_module, disk):
    disk[CONFIG_PATH] = ONE_REGION
    host.expect('manager-converged')
    outcome, result = run_module(pmemd_config, {'regions': [dict(DATA, size=[['4G']])]})
    assert outcome == 'failed'
    assert result['msg'] == 'regions[0].size[0]: a list inside a list has no place in pmemd.yaml'


def test_busy_is_tried_again_and_other_errors_are_not(monkeypatch):
    sleeps = []
    monkeypatch.setattr(pmemd_config.time, 'sleep', sleeps.append)
    answers = [BusError('SetConfig', BUSY, 'Apply is in progress'), 'converged']

    def call(text, apply):
        answer = answers.pop(0)
        if isinstance(answer, BusError):
            raise answer
        return answer

    assert pmemd_config.busy_retried(call, 'x', False) == 'converged'
    assert sleeps == [2]

    def denied(text, apply):
        raise BusError('SetConfig', 'org.freedesktop.DBus.Error.AccessDenied', 'no')

    with pytest.raises(BusError):
        pmemd_config.busy_retried(denied, 'x', False)
    assert sleeps == [2]

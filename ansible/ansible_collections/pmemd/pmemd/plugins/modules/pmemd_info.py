#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) pmemd contributors
# MIT License (see LICENSE in the pmemd repository)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pmemd_info
short_description: What pmemd says about the host's emulated persistent memory
version_added: "0.1.0"
description:
  - Reads the state of pmemd's D-Bus service C(io.pmemd1) with C(busctl), for C(when)
    conditions and reports - the overall state, whether a reboot is required, the
    bootloader, the trial boot, and each region's device, mount and DAX.
  - Reading needs no privilege.
  - With I(wait), first waits for the boot to finish (C(systemctl is-system-running --wait))
    and for pmemd to finish verifying a trial boot, as after a reboot.
options:
  wait:
    description:
      - Wait until the boot has finished and pmemd is no longer verifying a trial boot
        (its C(Trial) is not C(running)), at most I(timeout) seconds.
    type: bool
    default: false
  timeout:
    description: Seconds to wait at most with I(wait).
    type: int
    default: 600
  plan:
    description: Also return the C(pmemd plan --json) document (C(GetPlan)).
    type: bool
    default: false
attributes:
  check_mode:
    description: Reads only; runs in check mode as in a normal run.
    support: full
  diff_mode:
    description: Changes nothing, so there is nothing to show.
    support: none
extends_documentation_fragment:
  - pmemd.pmemd.service
seealso:
  - module: pmemd.pmemd.pmemd_config
author:
  - pmemd contributors (@pmemd)
'''

EXAMPLES = r'''
- name: Read pmemd's state
  pmemd.pmemd.pmemd_info:
  register: pmemd_info_result

- name: Fail where a region is not ready
  ansible.builtin.assert:
    that: pmemd_info_result.pmemd.regions | rejectattr('state', 'eq', 'ready') | list | length == 0
    fail_msg: "{{ pmemd_info_result.pmemd.regions | rejectattr('state', 'eq', 'ready') | map(attribute='state_reason') | list }}"

- name: After a reboot, wait until the new boot is verified
  pmemd.pmemd.pmemd_info:
    wait: true
    timeout: 900
  register: pmemd_info_result
'''

RETURN = r'''
pmemd:
  description: The state of pmemd on the host, from the properties of C(io.pmemd1).
  returned: always
  type: dict
  contains:
    state:
      description: C(converged), C(changes-pending), C(reboot-required), C(degraded) or C(invalid-config).
      type: str
      sample: converged
    reboot_required:
      description:
        - Whether a reboot now takes the host to its config - the boot configuration carries
          options the running kernel lacks (C(state) C(reboot-required)), or a trial boot of
          them is armed (C(state) stays C(changes-pending) until the trial boot commits them).
          Changes pending and not applied are not helped by a reboot.
      type: bool
    running_differs:
      description: Whether the running kernel lacks what the config asks for (C(RebootRequired) of C(io.pmemd1)), whatever the boot configuration says.
      type: bool
    version:
      description: pmemd's version.
      type: str
    bootloader:
      description: The bootloader backend pmemd uses (empty when none was found).
      type: str
      sample: update-grub
    bootloader_reason:
      description: Why that backend, or why none.
      type: str
    config_path:
      description: The config file.
      type: str
      sample: /etc/pmemd.yaml
    current_memmap:
      description: The C(memmap=) options of the running kernel.
      type: list
      elements: str
    desired_memmap:
      description: The options the config asks for (C(memmap=), C(nokaslr)).
      type: list
      elements: str
    trial:
      description: The trial boot's state (C(none), C(armed), C(running), C(committed), C(failed)).
      type: str
    trial_reason:
      description: Why the trial boot is in its state.
      type: str
    warnings:
      description: pmemd's warnings (C(code), C(region), C(message)).
      type: list
      elements: dict
    problems:
      description: The config's problems (C(message), C(key), C(file), C(line), C(column), C(text)).
      type: list
      elements: dict
    read_error:
      description: Why the machine could not be read, or empty.
      type: str
    regions:
      description: The configured regions, in the config's order.
      type: list
      elements: dict
      contains:
        name:
          description: The region's name.
          type: str
        path:
          description: Its D-Bus object.
          type: str
        size:
          description: Bytes.
          type: int
        offset:
          description: The physical start address.
          type: int
        memmap:
          description: Its C(memmap=) option.
          type: str
        device:
          description: Its block device (empty when missing).
          type: str
          sample: /dev/pmem0
        mountpoint:
          description: Where its filesystem is declared (empty for a bare device).
          type: str
        filesystem_type:
          description: C(ext4), C(xfs) or empty.
          type: str
        state:
          description: C(ready), C(missing), C(mismatch), C(not-dax), C(no-pmd), C(not-mounted) or C(unknown).
          type: str
        state_reason:
          description: Why.
          type: str
        dax:
          description: Whether the device (and its mount) really is DAX.
          type: bool
    boot_state:
      description: With I(wait), what C(systemctl is-system-running) said once the boot finished.
      type: str
      sample: running
    plan:
      description: With I(plan), the C(pmemd plan --json) document; null when pmemd cannot plan (an invalid config).
      type: dict
'''

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pmemd.pmemd.plugins.module_utils.pmemd_bus import (
    Bus,
    BusError,
    module_runner,
    problem_rows,
    warning_rows,
)
from ansible_collections.pmemd.pmemd.plugins.module_utils.pmemd_plan import reboot_would_help

POLL = 2  # seconds between two readings while a trial boot is being verified
TIMED_OUT = 124  # timeout(1)'s exit status when the command ran out of time

MANAGER_FACTS = (('Version', 'version'), ('State', 'state'),
                 ('RebootRequired', 'running_differs'), ('Bootloader', 'bootloader'),
                 ('BootloaderReason', 'bootloader_reason'), ('ConfigPath', 'config_path'),
                 ('CurrentMemmap', 'current_memmap'), ('DesiredMemmap', 'desired_memmap'),
                 ('ReadError', 'read_error'), ('Trial', 'trial'),
                 ('TrialReason', 'trial_reason'))
REGION_FACTS = (('Name', 'name'), ('Size', 'size'), ('Offset', 'offset'),
                ('Memmap', 'memmap'), ('Device', 'device'), ('Mountpoint', 'mountpoint'),
                ('FilesystemType', 'filesystem_type'), ('State', 'state'),
                ('StateReason', 'state_reason'), ('Dax', 'dax'))


class WaitFailed(Exception):
    pass


def manager_facts(props):
    facts = dict((fact, props[name]) for name, fact in MANAGER_FACTS)
    facts['reboot_required'] = reboot_would_help(props)
    facts['warnings'] = warning_rows(props['Warnings'])
    facts['problems'] = problem_rows(props['Problems'])
    return facts


def region_facts(props, path):
    facts = dict((fact, props[name]) for name, fact in REGION_FACTS)
    facts['path'] = path
    return facts


def wait_for_boot(module, deadline):
    """Wait for systemd to finish booting; what it then says (``running``, ``degraded``)."""
    systemctl = module.get_bin_path('systemctl', required=True)
    argv = [systemctl, 'is-system-running', '--wait']
    limit = module.get_bin_path('timeout')
    if limit is not None:
        argv = [limit, '%d' % max(1, int(deadline - time.time())), *argv]
    rc, stdout, _stderr = module.run_command(argv)
    state = stdout.strip()
    if rc == TIMED_OUT or state in ('initializing', 'starting'):
        raise WaitFailed('the boot did not finish within %d s (systemctl is-system-running: '
                         '%s)' % (module.params['timeout'], state or 'no answer'))
    return state


def settled_properties(module, bus):
    """The Manager's properties once the boot finished and no trial is being verified."""
    deadline = time.time() + module.params['timeout']
    boot_state = wait_for_boot(module, deadline)
    while True:
        props = bus.manager_properties()
        if props['Trial'] != 'running':
            return props, boot_state
        if time.time() >= deadline:
            raise WaitFailed('pmemd was still verifying the trial boot after %d s: %s'
                             % (module.params['timeout'], props['TrialReason']))
        time.sleep(POLL)


def gather(module, bus):
    boot_state = None
    if module.params['wait']:
        props, boot_state = settled_properties(module, bus)
    else:
        props = bus.manager_properties()
    facts = manager_facts(props)
    facts['regions'] = [region_facts(bus.region_properties(row['path']), row['path'])
                        for row in bus.list_regions()]
    if boot_state is not None:
        facts['boot_state'] = boot_state
    if module.params['plan']:
        try:
            facts['plan'] = bus.plan()
        except BusError as err:
            if err.absent or err.denied:
                raise
            facts['plan'] = None
            facts['plan_error'] = err.text
    return facts


def main():
    module = AnsibleModule(
        argument_spec=dict(wait=dict(type='bool', default=False),
                           timeout=dict(type='int', default=600),
                           plan=dict(type='bool', default=False)),
        supports_check_mode=True)
    bus = Bus(module_runner(module), busctl=module.get_bin_path('busctl', required=True))
    try:
        facts = gather(module, bus)
    except WaitFailed as err:
        module.fail_json(msg='%s' % err)
    except BusError as err:
        module.fail_json(msg=err.describe(), error=err.name or None)
    module.exit_json(changed=False, pmemd=facts)


if __name__ == '__main__':
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) pmemd contributors
# MIT License (see LICENSE in the pmemd repository)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pmemd_config
short_description: Set pmemd's configuration and apply it through the pmemd service
version_added: "0.1.0"
description:
  - Writes C(/etc/pmemd.yaml) through pmemd's D-Bus service C(io.pmemd1) (C(SetConfig), which
    validates the config against this machine and replaces the file atomically, keeping a
    backup), then applies it (C(Apply), what C(pmemd reconcile) does) so that the boot
    configuration carries the C(memmap=) options the config asks for.
  - The config is given as the options I(regions), I(boot) and I(memory), with the structure
    of the file's keys (see pmemd.yaml(5)), or as the whole text in I(content). The module
    owns the file, as M(ansible.builtin.template) would; a file with the same text is left alone.
  - A config the service rejects fails the task with pmemd's own messages, each located as
    C(FILE:LINE:COLUMN) in the text the module would write (returned as C(config)).
  - Nothing reboots here. C(reboot_required) says whether a reboot now takes the host to
    its config (the boot configuration carries it, or a trial boot of it is armed); the
    role C(pmemd.pmemd.pmemd) reboots when allowed to.
  - Talks to the service with C(busctl) (systemd 240 or later) as the task's user; changes
    are authorized by polkit (action C(io.pmemd1.manage)) or, without polkit, for root only.
options:
  regions:
    description:
      - The regions of emulated persistent memory - the list C(regions) of pmemd.yaml(5), with
        the file's keys as they are spelled there - C(name), C(size), C(offset), C(mode),
        C(map), C(align) and C(filesystem) (C(type), C(mountpoint), C(options), C(on-boot)).
      - Sizes and offsets are strings as the kernel's C(memparse) reads them (C(4G), C(1536M),
        C(0x40000000)) or whole numbers of bytes.
      - pmemd checks every key and value; what it refuses fails the task with its message,
        located in the text the module would write.
      - Omitted or empty, the config declares no region; pmemd then takes its options off
        the boot configuration.
    type: list
    elements: dict
  boot:
    description:
      - How pmemd keeps the kernel command line in step - C(boot) of pmemd.yaml(5) -
        C(bootloader), C(reboot), C(kaslr), C(trial).
      - Leave C(reboot) unset (C(never)) when Ansible decides about reboots.
    type: dict
  memory:
    description:
      - Limits for every region - C(memory) of pmemd.yaml(5) - C(alignment),
        C(min-system-ram).
    type: dict
  content:
    description:
      - The whole text of C(/etc/pmemd.yaml), instead of I(regions), I(boot) and I(memory).
    type: str
  apply:
    description:
      - Apply the config to the boot configuration now (C(Apply)). With C(false) the file is
        written and C(pmemd-reconcile.service) applies it at the next boot.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for a change, which may run the bootloader's tool.
    type: int
    default: 900
attributes:
  check_mode:
    description: Validates the config with the service (C(Validate)) and plans it there (C(PlanConfig)); nothing is written.
    support: full
  diff_mode:
    description: Shows the config file and the next boot's C(memmap=) options before and after.
    support: full
notes:
  - In check mode the plan of a changed config comes from the service (C(PlanConfig), the plan
    C(GetPlan) would give once the config is written), which writes nothing; from a pmemd
    service without C(PlanConfig) the next boot's options are not predicted.
  - The config travels to C(busctl) on its command line, so it must be smaller than 128 KiB.
extends_documentation_fragment:
  - pmemd.pmemd.service
seealso:
  - module: pmemd.pmemd.pmemd_info
author:
  - pmemd contributors (@pmemd)
'''

EXAMPLES = r'''
- name: A bare pmem device, and an ext4 DAX filesystem kept across warm reboots
  pmemd.pmemd.pmemd_config:
    regions:
      - {name: raw, size: 1G, offset: 8G}
      - name: scratch
        size: 2G
        filesystem: {type: ext4, mountpoint: /mnt/scratch, on-boot: keep}
    boot:
      kaslr: disable
  become: true
  register: pmemd_config_result

- name: Say when the host needs a reboot
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }} needs a reboot for {{ pmemd_config_result.memmap.after | join(' ') }}"
  when: pmemd_config_result.reboot_required

- name: The file as written elsewhere
  pmemd.pmemd.pmemd_config:
    content: "{{ lookup('ansible.builtin.file', 'files/pmemd.yaml') }}"
  become: true
'''

RETURN = r'''
state:
  description:
    - pmemd's state after the task (C(converged), C(changes-pending), C(reboot-required),
      C(degraded), C(invalid-config)).
    - In check mode, the state pmemd reports for the new config before it is applied.
  returned: always
  type: str
  sample: reboot-required
reboot_required:
  description:
    - Whether a reboot now takes the host to its config, once applied - the boot configuration
      carries the options the running kernel lacks, or a trial boot of them is armed (then
      C(state) stays C(changes-pending) until the trial boot commits them).
  returned: always
  type: bool
  sample: true
config:
  description: The text of C(/etc/pmemd.yaml) the module wrote (or would write); problems are located in it.
  returned: always
  type: str
  sample: "version: 1\nregions: []\n"
config_path:
  description: The config file of the service.
  returned: always
  type: str
  sample: /etc/pmemd.yaml
plan:
  description:
    - The C(pmemd plan --json) document for the new config (C(GetPlan) after the change), with
      the regions' places, the C(memmap=) changes, devices, bootloader and trial boot.
    - In check mode, the plan of the new config from the service (C(PlanConfig)); null when not known.
  returned: always
  type: dict
memmap:
  description: pmemd's options (C(memmap=), C(nokaslr)) on the command line of the next boot, before and after the task.
  returned: always
  type: dict
  contains:
    before:
      description: Before the task.
      type: list
      elements: str
      sample: ["memmap=512M!1G"]
    after:
      description: After the task (in check mode, after the change); null when not known.
      type: list
      elements: str
      sample: ["memmap=512M!1G", "memmap=256M!1536M"]
pmemd_warnings:
  description: pmemd's warnings for the config (each also shown as a task warning).
  returned: always
  type: list
  elements: dict
  contains:
    code:
      description: The kind of warning.
      type: str
      sample: kaslr
    region:
      description: The region it is about, or null.
      type: str
    message:
      description: The warning.
      type: str
report:
  description: What applying wrote and ran (C(Apply)'s report); in check mode what it would, when the config is unchanged.
  returned: always
  type: list
  elements: str
trial:
  description: The trial boot's state (C(none), C(armed), C(running), C(committed), C(failed)).
  returned: always
  type: str
  sample: armed
trial_reason:
  description: Why the trial boot is in its state.
  returned: always
  type: str
problems:
  description: The lines of pmemd's error text when the config is invalid.
  returned: failure
  type: list
  elements: str
'''

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pmemd.pmemd.plugins.module_utils.pmemd_bus import (
    BUSY,
    UNKNOWN_METHOD,
    VALIDATE_SOURCE,
    Bus,
    BusError,
    module_runner,
)
from ansible_collections.pmemd.pmemd.plugins.module_utils.pmemd_plan import (
    next_boot_options,
    options_after,
    reboot_after_changes,
    reboot_would_help,
)
from ansible_collections.pmemd.pmemd.plugins.module_utils.pmemd_render import (
    RenderError,
    render_config,
)

PENDING = 'changes-pending'
REBOOT_REQUIRED = 'reboot-required'
BUSY_TRIES = 30  # a change another client or the boot's reconcile is making: 2 s apart

ARGUMENT_SPEC = dict(
    regions=dict(type='list', elements='dict'),
    boot=dict(type='dict'),
    memory=dict(type='dict'),
    content=dict(type='str'),
    apply=dict(type='bool', default=True),
    timeout=dict(type='int', default=900),
)
EXCLUSIVE = [('content', 'regions'), ('content', 'boot'), ('content', 'memory')]


class ConfigFailed(Exception):
    """The task fails with ``msg`` and more ``details`` (result keys)."""

    def __init__(self, msg, **details):
        super(ConfigFailed, self).__init__(msg)
        self.msg = msg
        self.details = details


def desired_text(params):
    """The text the config file should have."""
    if params['content'] is not None:
        return params['content']
    return render_config(params['regions'], params['boot'], params['memory'])


def read_config_file(path):
    """The config file's text, or None when there is none."""
    try:
        with open(path, 'rb') as handle:
            return handle.read().decode('utf-8', 'replace')
    except (IOError, OSError):
        return None


def busy_retried(call, *args):
    """``call(*args)``, again while another change holds pmemd's lock (Busy)."""
    for attempt in range(BUSY_TRIES):
        try:
            return call(*args)
        except BusError as err:
            if err.name != BUSY or attempt == BUSY_TRIES - 1:
                raise
        time.sleep(2)


def current_plan(bus):
    """GetPlan for the config on disk, or None when the service cannot plan it."""
    try:
        return bus.plan()
    except BusError as err:
        if err.absent or err.denied:
            raise
        return None


def predicted_plan(module, bus, text, path):
    """(check mode) ``PlanConfig``: the plan GetPlan would give once ``text`` is the config
    (nothing is written); None (with a warning) when the service cannot plan it."""
    try:
        return bus.plan_config(text)
    except BusError as err:
        if err.absent or err.denied:
            raise
        if err.name == UNKNOWN_METHOD:
            why = 'the pmemd service on the host has no PlanConfig (a pmemd before it)'
        else:
            why = 'the pmemd service could not plan it: %s' % err.describe().replace(
                VALIDATE_SOURCE + ':', path + ':')
    module.warn('the plan of the new config is not known in check mode: %s' % why)
    return None


def check_config(bus, text, path):
    """Validate's warnings for ``text``; ConfigFailed with pmemd's located problems."""
    try:
        return bus.validate(text)
    except BusError as err:
        if not err.invalid_config:
            raise
        located = err.text.replace(VALIDATE_SOURCE + ':', path + ':')
        raise ConfigFailed('pmemd refuses the config for %s:\n%s' % (path, located),
                           problems=located.splitlines(), config=text) from None


def write_config(bus, text, path, before):
    """SetConfig without applying (the plan of the new config is read before Apply); a
    failure says whether the file was replaced all the same."""
    try:
        busy_retried(bus.set_config, text, False)
    except BusError as err:
        raise ConfigFailed(err.describe(), changed=read_config_file(path) != before,
                           error=err.name or None, config=text) from None


def state_of(plan, fallback):
    return plan['state'] if plan is not None else fallback


def configure(module, bus):
    """What the task does: the result (``changed``, ``diff`` …)."""
    params, check = module.params, module.check_mode
    before = bus.manager_properties()
    path = before['ConfigPath']
    text = desired_text(params)
    current = read_config_file(path)
    warnings = check_config(bus, text, path)
    plan_before = current_plan(bus)
    config_changed = current != text
    if not config_changed:
        plan = plan_before
    elif check:
        plan = predicted_plan(module, bus, text, path)
    else:
        write_config(bus, text, path, current)
        plan = current_plan(bus)
    pending = state_of(plan, before['State'] if not config_changed else None) == PENDING
    apply = params['apply'] and pending
    report = []
    if apply and not check:
        try:
            _state, report = busy_retried(bus.apply, False)
        except BusError as err:
            written = '%s was written, but applying it failed: ' % path if config_changed else ''
            raise ConfigFailed(written + err.describe(), changed=config_changed,
                               error=err.name or None, config=text) from None
    elif apply and not config_changed:
        _state, report = bus.apply(True)
    result = dict(changed=config_changed or apply, config=text, config_path=path,
                  pmemd_warnings=warnings, report=report)
    result.update(outcome(bus, check, plan, plan_before, apply))
    if module._diff:
        result['diff'] = diff(path, current, text, result['memmap'])
    for warning in warnings:
        module.warn(warning['message'])
    return result


def outcome(bus, check, plan, plan_before, applied):
    """State, reboot, plan, trial and the next boot's options once the task is done (in
    check mode: as the plan of the new config says they would be)."""
    known = plan or plan_before
    before = next_boot_options(known) if known is not None else []
    if check:
        after = (options_after(plan) if applied else before) if plan is not None else None
        trial = (plan or {}).get('trial') or {}
        reboot = plan is not None and (reboot_after_changes(plan) if applied
                                       else plan['state'] == REBOOT_REQUIRED)
        return dict(state=state_of(plan, 'unknown'), reboot_required=reboot, plan=plan,
                    memmap=dict(before=before, after=after), trial=trial.get('state', ''),
                    trial_reason=trial.get('reason', ''))
    props = bus.manager_properties()
    final = current_plan(bus) if applied else plan
    after = options_after(plan) if applied and plan is not None else before
    return dict(state=props['State'], reboot_required=reboot_would_help(props),
                plan=final, memmap=dict(before=before, after=after), trial=props['Trial'],
                trial_reason=props['TrialReason'])


def lines(items):
    return ''.join(item + '\n' for item in items)


def diff(path, current, text, memmap):
    """Ansible's diff: the config file, and the next boot's options."""
    out = [dict(before_header=path if current is not None else '%s (absent)' % path,
                after_header=path, before=current or '', after=text)]
    if memmap['after'] is not None:
        out.append(dict(before_header="next boot: pmemd's kernel options (before)",
                        after_header="next boot: pmemd's kernel options (after)",
                        before=lines(memmap['before']), after=lines(memmap['after'])))
    return out


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, mutually_exclusive=EXCLUSIVE,
                           supports_check_mode=True)
    bus = Bus(module_runner(module), busctl=module.get_bin_path('busctl', required=True),
              change_timeout=module.params['timeout'])
    try:
        result = configure(module, bus)
    except ConfigFailed as err:
        module.fail_json(msg=err.msg, **err.details)
    except RenderError as err:
        module.fail_json(msg='%s' % err)
    except BusError as err:
        module.fail_json(msg=err.describe(), error=err.name or None)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

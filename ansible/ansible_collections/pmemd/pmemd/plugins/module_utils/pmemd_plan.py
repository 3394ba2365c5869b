# -*- coding: utf-8 -*-
# Copyright (c) pmemd contributors
# MIT License (see LICENSE in the pmemd repository)
"""Reading a ``pmemd plan --json`` document (also D-Bus ``GetPlan``): pmemd's options on
the next boot's command line, before and after the plan's changes are made.

A plan is judged against the bootloader's next boot (the running kernel's command line
where no bootloader was found): its ``changes`` say which of pmemd's options that command
line gains (``add``), loses (``remove``) or keeps.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

NOKASLR = 'nokaslr'


def memmap_options(cmdline):
    """The options of a kernel command line that pmemd manages (``memmap=``, ``nokaslr``),
    in their order."""
    return [word for word in (cmdline or '').split()
            if word.startswith('memmap=') or word == NOKASLR]


def next_boot_options(plan):
    """pmemd's options on the command line the plan is judged against."""
    boot = (plan.get('bootloader') or {}).get('next_boot') or {}
    if boot.get('cmdline') is not None:
        return memmap_options(boot['cmdline'])
    return list(plan.get('running') or [])


def options_after(plan):
    """The options of :func:`next_boot_options` once the plan's changes are made."""
    changes = plan.get('changes') or []
    removed = set(c['argument'] for c in changes if c.get('action') == 'remove')
    after = [word for word in next_boot_options(plan) if word not in removed]
    after.extend(c['argument'] for c in changes
                 if c.get('action') == 'add' and c['argument'] not in after)
    return after


def reboot_after_changes(plan):
    """Whether a reboot will be required once the plan's changes are made. The document's
    own ``reboot_required`` is about now (true whenever a change is pending); this is
    pmemd's rule read from the document: the running kernel lacks a region's option, or
    still carries an option pmemd wrote and no longer wants. The document lists only the
    running kernel's ``memmap=`` options, so ``nokaslr`` being added counts as a reboot.
    """
    if plan.get('state') != 'changes-pending':
        return plan.get('state') == 'reboot-required'
    if any(not region.get('on_running_cmdline', False) for region in plan.get('regions') or []):
        return True
    if any(c['argument'] == NOKASLR and c.get('action') == 'add'
           for c in plan.get('changes') or []):
        return True
    owned = set((plan.get('bootloader') or {}).get('owned') or [])
    stale = (set(plan.get('running') or []) & owned) - set(plan.get('desired') or [])
    return bool(stale)


def reboot_would_help(props):
    """Whether rebooting now takes the host to its config, from the Manager's properties:
    the boot configuration is written and the running kernel lacks it (C(State)
    C(reboot-required)), or a trial boot of the new options is armed (C(State) stays
    C(changes-pending) until the trial boot commits them into the default entry, and
    C(RebootRequired) is true). Changes that are pending and not armed are not helped by a
    reboot: the next boot would come up as this one did."""
    if props.get('State') == 'reboot-required':
        return True
    return props.get('Trial') == 'armed' and bool(props.get('RebootRequired'))

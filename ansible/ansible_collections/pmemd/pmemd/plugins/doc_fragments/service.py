# -*- coding: utf-8 -*-
# Copyright (c) pmemd contributors
# MIT License (see LICENSE in the pmemd repository)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """What every module of the collection needs on the managed host."""

    DOCUMENTATION = r'''
options: {}
requirements:
  - pmemd on the managed host, with its D-Bus service C(io.pmemd1)
  - busctl from systemd 240 or later
notes:
  - The module talks to C(io.pmemd1) on the system bus with C(busctl) as the task's user;
    it imports nothing of pmemd, so it runs under whichever Python Ansible picks.
'''

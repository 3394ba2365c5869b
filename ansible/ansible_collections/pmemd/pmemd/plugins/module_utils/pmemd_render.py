# -*- coding: utf-8 -*-
# Copyright (c) pmemd contributors
# MIT License (see LICENSE in the pmemd repository)
"""``/etc/pmemd.yaml`` from the options of ``pmemd_config`` (``boot``, ``memory`` and
``regions`` with the structure of the file, see pmemd.yaml(5)), as text, without a YAML
library: the managed host's Python may have none. The same options give the same text on
every run, so comparing it with the file on the host says whether the config changes.

Everything given is written, keys pmemd does not know included: pmemd is the one judge of
the config, and its complaints come back located in this text (``regions[0].size`` at
line and column). Known keys come in the order pmemd.yaml(5) lists them, others after
them in sorted order; a key whose value is None is left out (pmemd's default applies). A
scalar is written plain when YAML reads it back as the same string, and double-quoted
with JSON's escapes (which YAML reads too) otherwise.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

HEADER = ('# Managed by Ansible (pmemd.pmemd.pmemd_config): edits here are replaced on its '
          'next run.\n# See pmemd.yaml(5).\n')
# The order of keys in a mapping, by the key that holds it (a list's items: the list's).
ORDER = {
    '': ('version', 'boot', 'memory', 'regions'),
    'boot': ('bootloader', 'reboot', 'kaslr', 'trial'),
    'memory': ('alignment', 'min-system-ram'),
    'regions': ('name', 'size', 'offset', 'mode', 'map', 'align', 'filesystem'),
    'filesystem': ('type', 'mountpoint', 'options', 'on-boot'),
}
_PLAIN = re.compile(r'[A-Za-z0-9/_.+][A-Za-z0-9/_.+=@!-]*\Z')
# Plain words YAML 1.1 reads as something other than a string.
_RESERVED = frozenset(('null', '~', 'true', 'false', 'yes', 'no', 'on', 'off', 'y', 'n'))
INDENT = '  '


class RenderError(ValueError):
    """A value that has no place in pmemd.yaml (its key path named)."""


def scalar(value, where):
    """One scalar: a string plain or quoted, a number as its digits, a boolean as YAML's."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, int):
        return '%d' % value
    if isinstance(value, float):
        return repr(value)
    if not isinstance(value, str):
        raise RenderError('%s: expected a string, a number, a list or a mapping, got %r'
                          % (where, value))
    if _PLAIN.match(value) and value.lower() not in _RESERVED:
        return value
    return json.dumps(value, ensure_ascii=False)


def _ordered(mapping, context):
    known = ORDER.get(context, ())
    keys = [k for k in known if k in mapping]
    keys.extend(sorted((k for k in mapping if k not in known), key=lambda k: '%s' % k))
    return [(k, mapping[k]) for k in keys if mapping[k] is not None]


def _is_scalar(value):
    return not isinstance(value, (dict, list, tuple))


def _flow(items, where):
    return '[%s]' % ', '.join(scalar(v, '%s[%d]' % (where, i)) for i, v in enumerate(items))


def _mapping(lines, depth, mapping, context, where):
    for key, value in _ordered(mapping, context):
        name = scalar('%s' % key, where)
        path = '%s.%s' % (where, key) if where else '%s' % key
        head = '%s%s:' % (INDENT * depth, name)
        if isinstance(value, dict):
            start = len(lines)
            lines.append(head)
            _mapping(lines, depth + 1, value, '%s' % key, path)
            if len(lines) == start + 1:  # nothing but None in it
                lines[start] += ' {}'
        elif isinstance(value, (list, tuple)):
            if all(_is_scalar(v) for v in value):
                lines.append('%s %s' % (head, _flow(value, path)))
            else:
                lines.append(head)
                _sequence(lines, depth + 1, value, '%s' % key, path)
        else:
            lines.append('%s %s' % (head, scalar(value, path)))


def _sequence(lines, depth, items, context, where):
    for index, item in enumerate(items):
        path = '%s[%d]' % (where, index)
        dash = '%s- ' % (INDENT * depth)
        if isinstance(item, dict):
            start = len(lines)
            _mapping(lines, depth + 1, item, context, path)
            if len(lines) == start:
                lines.append(dash + '{}')
            else:
                lines[start] = dash + lines[start][len(INDENT) * (depth + 1):]
        elif _is_scalar(item):
            lines.append(dash + scalar(item, path))
        else:
            raise RenderError('%s: a list inside a list has no place in pmemd.yaml' % path)


def render_config(regions=None, boot=None, memory=None):
    """The text of ``/etc/pmemd.yaml`` for these options (``None`` leaves a section out;
    no region is ``regions: []``)."""
    document = {'version': 1, 'boot': boot or None, 'memory': memory or None,
                'regions': list(regions or [])}
    lines = []
    _mapping(lines, 0, document, '', '')
    return HEADER + '\n'.join(lines) + '\n'

# -*- coding: utf-8 -*-
# Copyright (c) pmemd contributors
# MIT License (see LICENSE in the pmemd repository)
"""The text of /etc/pmemd.yaml made from pmemd_config's options."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
import yaml
from ansible_collections.pmemd.pmemd.plugins.module_utils.pmemd_render import (
    HEADER,
    RenderError,
    render_config,
)

# pmemd.yaml(5)'s example, as a play's variables give it.
REGIONS = [
    {'name': 'data', 'size': '4G', 'offset': '12G',
     'filesystem': {'type': 'xfs', 'mountpoint': '/pmem', 'options': ['noatime'],
                    'on-boot': 'recreate'}},
    {'name': 'cache', 'size': '2G',
     'filesystem': {'on-boot': 'keep', 'mountpoint': '/pmem-cache', 'type': 'ext4'}},
]


def read_back(text):
    """The document as pmemd reads it: every scalar a string (pmemd's reader keeps the
    text of each scalar; it never lets YAML turn 'yes' into true)."""
    return yaml.load(text, Loader=yaml.BaseLoader)


def test_the_example_is_written_in_the_order_of_the_manual():
    text = render_config(REGIONS, {'kaslr': 'disable', 'bootloader': 'auto'},
                         {'min-system-ram': '1G', 'alignment': '128M'})
    assert text == HEADER + '''\
version: 1
boot:
  bootloader: auto
  kaslr: disable
memory:
  alignment: 128M
  min-system-ram: 1G
regions:
  - name: data
    size: 4G
    offset: 12G
    filesystem:
      type: xfs
      mountpoint: /pmem
      options: [noatime]
      on-boot: recreate
  - name: cache
    size: 2G
    filesystem:
      type: ext4
      mountpoint: /pmem-cache
      on-boot: keep
'''


def test_the_same_options_in_another_order_give_the_same_text():
    shuffled = [dict(reversed(list(region.items()))) for region in REGIONS]
    assert render_config(shuffled) == render_config(REGIONS)


def test_no_region_and_unset_options_leave_pmemds_defaults():
    assert render_config() == HEADER + 'version: 1\nregions: []\n'
    assert render_config([], {'reboot': None}, {}) == HEADER + (
        'version: 1\nboot: {}\nregions: []\n')
    text = render_config([{'name': 'data', 'size': '1G', 'offset': None, 'filesystem': None}])
    assert read_back(text)['regions'] == [{'name': 'data', 'size': '1G'}]


@pytest.mark.parametrize('value', [
    'yes', 'No', 'null', '~', 'true', '', ' lead', 'trail ', 'a b', 'x: y', 'x:', '#c',
    'a #c', '-5', '- x', '*alias', '&anchor', '!tag', '@at', '%pct', '{x}', '[x]', "it's",
    '"q"', 'back\\slash', 'tab\there', 'line\nbreak', 'café', '0x40000000', '1536M',
    '010G', 'context=system_u:object_r:tmp_t:s0', '/pmem/a-b_c.d',
])
def test_every_string_reads_back_as_itself(value):
    text = render_config([{'name': value, 'size': value,
                           'filesystem': {'type': 'xfs', 'mountpoint': value,
                                          'options': [value, 'noatime']}}])
    [region] = read_back(text)['regions']
    assert region == {'name': value, 'size': value,
                      'filesystem': {'type': 'xfs', 'mountpoint': value,
                                     'options': [value, 'noatime']}}


def test_numbers_are_bytes_and_keys_pmemd_does_not_know_are_passed_on_for_it_to_judge():
    text = render_config([{'name': 'data', 'size': 1073741824, 'offset': 0, 'sise': '1G',
                           'mode': 'devdax'}])
    assert '  - name: data\n    size: 1073741824\n    offset: 0\n    mode: devdax\n' \
           '    sise: 1G\n' in text


def test_a_list_of_regions_as_a_list_inside_a_list_has_no_place():
    with pytest.raises(RenderError) as raised:
        render_config([{'name': 'data', 'size': '1G', 'filesystem': {'options': [['a']]}}])
    assert str(raised.value) == ('regions[0].filesystem.options[0]: a list inside a list has '
                                 'no place in pmemd.yaml')

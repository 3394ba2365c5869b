"""The wire contract (pmemd.service.api) is one: the service's objects, their views and the
documentation users read (etc/dbus-1/interfaces/*.xml, installed for busctl introspect) say
what the table says — every method and its signature, every property and its type; and
region object paths are escaped as sd-bus escapes them."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import fields

import pytest
from dbus_next.service import ServiceInterface
from hypothesis import assume, given
from hypothesis import strategies as st

from pmemd.service import api
from pmemd.service.api import escape_path_label, region_path
from pmemd.service.objects import ManagerInterface, RegionInterface
from pmemd.service.views import ManagerView, RegionView
from tests.conftest import REPO

INTERFACES = REPO / "etc/dbus-1/interfaces"


@pytest.mark.parametrize(("label", "element"), [
    ("data", "data"),
    ("fast-log", "fast_2dlog"),  # '-' is not allowed in an object path
    ("0cache", "_30cache"),  # nor is a leading digit (sd-bus escapes it)
    ("a0", "a0"),
    ("a_b", "a_5fb"),  # '_' itself is escaped, so the escaping is reversible
    ("", "_"),
    ("é", "_c3_a9"),  # bytes of the UTF-8 encoding
    ("x.y", "x_2ey"),
])
def test_path_elements_are_escaped_like_sd_bus(label: str, element: str) -> None:
    assert escape_path_label(label) == element


@given(st.text(max_size=12), st.text(max_size=12))
def test_distinct_names_get_distinct_paths(first: str, second: str) -> None:
    """The escaping is reversible ('_' itself is escaped): two regions never share a path,
    and every element is a valid object-path element."""
    assume(first != second)
    assert escape_path_label(first) != escape_path_label(second)
    for element in (escape_path_label(first), escape_path_label(second)):
        assert re.fullmatch(r"[A-Za-z0-9_]+", element)


def test_region_path() -> None:
    assert region_path("fast-log") == "/io/pmemd1/region/fast_2dlog"


def _documented(interface: str) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """Methods (name → argument and result signatures) and properties of the XML."""
    node = ET.parse(INTERFACES / f"{interface}.xml").getroot().find("interface")
    assert node is not None and node.get("name") == interface
    methods = {}
    for method in node.findall("method"):
        args = method.findall("arg")
        methods[method.get("name") or ""] = (
            "".join(a.get("type") or "" for a in args if a.get("direction", "in") == "in"),
            "".join(a.get("type") or "" for a in args if a.get("direction") == "out"))
    properties = {p.get("name") or "": p.get("type") or "" for p in node.findall("property")}
    return methods, properties


@pytest.mark.parametrize(("interface", "properties", "view"), [
    (api.MANAGER_INTERFACE, api.MANAGER_PROPERTIES, ManagerView),
    (api.REGION_INTERFACE, api.REGION_PROPERTIES, RegionView),
])
def test_the_documented_interfaces_are_the_contract(interface: str, properties: dict[str, str],
                                                   view: type) -> None:
    methods, documented = _documented(interface)
    assert documented == properties
    assert [f.name for f in fields(view)] == list(properties)
    assert methods == {m.name: (m.args, m.result) for m in api.METHODS
                       if m.interface == interface}


@pytest.mark.parametrize(("interface", "objects"), [
    (api.MANAGER_INTERFACE, ManagerInterface), (api.REGION_INTERFACE, RegionInterface)])
def test_the_exported_objects_are_the_contract(interface: str,
                                               objects: type[ServiceInterface]) -> None:
    """What dbus-next introspects from the objects the service exports: the same members
    and signatures as the documentation (and so as the table)."""
    methods, properties = _documented(interface)
    exported = objects.__new__(objects)
    ServiceInterface.__init__(exported, interface)
    found = exported.introspect()
    assert {m.name: (m.in_signature, m.out_signature) for m in found.methods} == methods
    assert {p.name: p.signature for p in found.properties} == properties


def test_rows_keep_their_fields() -> None:
    row = api.RegionRow(name="fast-log", path=region_path("fast-log"), offset=1 << 30,
                        size=1 << 28, device="/dev/pmem1", mountpoint="/log", fstype="ext4",
                        state="ready")
    again = api.RegionRow.read(row.wire())
    assert (again.name, again.offset, again.state) == ("fast-log", 1 << 30, "ready")
    assert api.ProblemRow.read(["bad", "regions[0].size", "f", 4, 2]).render() == \
        "f:4:2: regions[0].size: bad"

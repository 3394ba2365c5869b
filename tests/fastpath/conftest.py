"""The fast paths are checked on the bootloader tests' machine trees."""

from tests.boot.conftest import tree  # noqa: F401

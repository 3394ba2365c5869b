"""pmemctl talks to the service on the D-Bus tests' private bus: the same fixtures."""

from tests.service.conftest import bus, root, service, workdir  # noqa: F401

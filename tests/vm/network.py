"""A guest's network for the tests that reach into it (the fleet's SSH, the guest's
Cockpit): one NIC on qemu's user network with restrict=on, so that the guest reaches
nothing outside and the host reaches it only through a port forwarded on 127.0.0.1."""

from __future__ import annotations

import socket

# The guest's address on qemu's user network (restrict=on: the guest reaches nothing
# outside; the host reaches it only through the forwarded port), for systemd-networkd.
GUEST_NETWORK = """\
cat >/etc/systemd/network/50-pmemd-test.network <<'EOF'
[Match]
Name=en*
[Network]
Address=10.0.2.15/24
EOF
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (qemu binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def network_args(port: int, guest_port: int = 22) -> list[str]:
    """qemu options: one virtio NIC on a user network whose only way in is 127.0.0.1:port,
    forwarded to the guest's ``guest_port``."""
    return ["-netdev",
            f"user,id=fleet,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:{guest_port}",
            "-device", "virtio-net-pci,netdev=fleet"]

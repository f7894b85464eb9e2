"""A loopback port for `auth login` to listen on: free on 127.0.0.1 and, where the machine has it, on ::1.

`auth login` never takes a random port (IMS would match no registration), so a test picks one and, against
the emulator, registers its redirect URI. Tests run in parallel: the port is only free when picked, which is
as good as a test can do without the listener's own help.
"""

from __future__ import annotations

import errno
import socket


def _free_on_ipv6(port: int) -> bool:
    if not socket.has_ipv6:
        return True
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", port))
    except OSError as exc:
        return exc.errno != errno.EADDRINUSE  # taken; any other failure means no ::1 on this machine
    return True


def free_login_port() -> int:
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if _free_on_ipv6(port):
            return port
    raise RuntimeError("no loopback port free on both 127.0.0.1 and ::1")


def login_redirect_uri(port: int) -> str:
    return f"http://localhost:{port}/signin-callback"

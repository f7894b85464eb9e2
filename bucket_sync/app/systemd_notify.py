"""systemd's notification protocol (sd_notify), in a few lines of the socket module: no libsystemd.

A service of ``Type=notify`` gets ``NOTIFY_SOCKET`` (a unix datagram socket; a name starting with ``@``
is in the abstract namespace) and, with ``WatchdogSec=``, ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``, the
process meant). Each message is one datagram of ``KEY=value`` lines: ``READY=1``, ``STATUS=...``,
``WATCHDOG=1``, ``STOPPING=1``, ``EXTEND_TIMEOUT_USEC=...``.

Without ``NOTIFY_SOCKET`` (not under systemd), or where unix datagram sockets do not exist (Windows),
:func:`from_environment` returns None and nothing is ever sent. A send that fails is logged at debug
level and forgotten: systemd being away must never disturb the watcher.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import Mapping

log = logging.getLogger("bucket_sync.watch")


class SystemdNotifier:
    def __init__(self, address: str) -> None:
        # "@name" is the abstract namespace: a leading NUL byte on the wire.
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)  # a full socket buffer drops a ping rather than stall the watcher

    def send(self, **fields: object) -> bool:
        """One datagram, e.g. ``send(READY=1, STATUS="watching")``; False if it could not be sent."""
        message = "\n".join(f"{key}={_one_line(value)}" for key, value in fields.items())
        try:
            self._sock.sendto(message.encode("utf-8", errors="replace"), self.address)
            return True
        except OSError as exc:
            log.debug("systemd notification not sent: %s", exc)
            return False

    def close(self) -> None:
        self._sock.close()


def _one_line(value: object) -> str:
    return " ".join(str(value).splitlines())  # a newline would start another KEY=value


def from_environment(env: Mapping[str, str] | None = None) -> SystemdNotifier | None:
    """The notifier systemd asked for, or None (not under systemd, or no unix datagram sockets here)."""
    env = os.environ if env is None else env
    address = env.get("NOTIFY_SOCKET", "")
    if not address or sys.platform == "win32" or not hasattr(socket, "AF_UNIX"):
        return None
    if not (address.startswith("/") or address.startswith("@")):
        log.debug("NOTIFY_SOCKET=%r is neither a path nor an abstract name: not notifying", address)
        return None
    try:
        return SystemdNotifier(address)
    except OSError as exc:
        log.debug("cannot open a socket for NOTIFY_SOCKET: %s", exc)
        return None


def watchdog_interval(env: Mapping[str, str] | None = None, *, pid: int | None = None) -> float | None:
    """Seconds between watchdog pings systemd expects at most (``WATCHDOG_USEC``), when they are meant
    for this process (``WATCHDOG_PID`` unset or ours); None without a watchdog."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    meant_for = env.get("WATCHDOG_PID", "")
    if meant_for and meant_for != str(os.getpid() if pid is None else pid):
        return None
    return int(usec) / 1_000_000


__all__ = ["SystemdNotifier", "from_environment", "watchdog_interval"]

"""Things done to the platform emulator while a real command runs."""

from __future__ import annotations

import threading
import time


def expire_tokens_once_running(emulator) -> threading.Thread:
    """Revoke every access token as soon as the run has fetched its first SAS (so it holds a token)."""

    def wait_then_expire() -> None:
        deadline = time.monotonic() + 60
        while emulator.request_count(r"/bucket$", status=200) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        emulator.expire_tokens()

    thread = threading.Thread(target=wait_then_expire, daemon=True)
    thread.start()
    return thread

"""A loopback webhook for the --notify-url tests: records every POST, answers with the statuses it is
given (then 200). Its URL carries a secret-looking path, as Slack's and Teams' webhooks do."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WEBHOOK_TOKEN = "T0HOOK/B0HOOK/xoxbWebhookSecretPath"


class Webhook:
    def __init__(self, statuses=()) -> None:
        self.statuses = list(statuses)
        self.bodies: list[dict] = []
        self.raw: list[bytes] = []
        self._lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with hook._lock:
                    hook.raw.append(body)
                    hook.bodies.append(json.loads(body))
                    status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                if status == 302:
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/{WEBHOOK_TOKEN}"

    def wait_for(self, n: int, timeout: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.bodies) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"the webhook received {len(self.bodies)} POST(s), expected {n}: {self.bodies}")
            time.sleep(0.05)
        return list(self.bodies)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "Webhook":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

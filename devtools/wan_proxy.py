"""A WAN on loopback: a TCP proxy that delays every byte by a one-way delay and caps each direction's
bandwidth, shared by all connections (as one link is). For the bench's --wan rows.

    with WanProxy(upstream_port=azurite.port, rtt_ms=40, mbit_s=400) as wan:
        url = wan.rewrite(sas_url)      # the same SAS, the proxy's port

Why its own: the fault proxy (tests/support) injects faults per request and throttles without delay; a
WAN is about latency and a shared link, which decide small-file and many-connection performance. Bytes are
relayed as they come, in order per connection: each chunk leaves at max(arrival + delay, when the link is
free) and holds the link for len / rate, so a burst from many connections queues as on a real link.
Nothing is logged (request targets carry SAS tokens).
"""

from __future__ import annotations

import asyncio
import threading
import time
from urllib.parse import urlsplit, urlunsplit

CHUNK = 64 * 1024


class _Link:
    """One direction of the link: the shared serialisation point."""

    def __init__(self, bytes_per_s: float, delay_s: float) -> None:
        self.rate = bytes_per_s
        self.delay = delay_s
        self.free_at = 0.0

    def schedule(self, n: int, arrived: float) -> float:
        """When a chunk of ``n`` bytes that arrived at ``arrived`` has crossed the link."""
        start = max(arrived, self.free_at)
        self.free_at = start + n / self.rate
        return self.free_at + self.delay


class WanProxy:
    def __init__(self, upstream_port: int, *, rtt_ms: float = 40.0, mbit_s: float = 400.0,
                 upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        rate = mbit_s * 1_000_000 / 8
        self.up = _Link(rate, rtt_ms / 2000)
        self.down = _Link(rate, rtt_ms / 2000)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def __enter__(self) -> "WanProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def rewrite(self, url: str) -> str:
        parts = urlsplit(url)
        return urlunsplit(parts._replace(netloc=f"127.0.0.1:{self.port}"))

    def start(self) -> "WanProxy":
        self._thread = threading.Thread(target=self._run, name="wan-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the WAN proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            # Close the listener and cancel every relay before the loop stops: a loop stopped under live
            # relays leaves pending tasks that print "Task was destroyed" noise into the bench's output.
            asyncio.run_coroutine_threadsafe(self._shut(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    async def _shut(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()  # the relays see their sockets end and finish on their own
        relays = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if relays:
            _, stuck = await asyncio.wait(relays, timeout=2)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)

    # -- the relay ---------------------------------------------------------------------------------
    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        self._server = loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            loop.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        self._writers.update((client_w, up_w))
        try:
            await asyncio.gather(self._pump(client_r, up_w, self.up), self._pump(up_r, client_w, self.down),
                                 return_exceptions=True)
        except asyncio.CancelledError:
            pass  # stop(): asyncio would log a cancelled connection callback as an error
        finally:
            self._writers.difference_update((client_w, up_w))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link) -> None:
        """Read as bytes come; deliver each chunk when the link says, in order (a queue per connection)."""
        queue: asyncio.Queue = asyncio.Queue(maxsize=64)  # 4 MiB in flight per direction: backpressure

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if data is None:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                await queue.put((link.schedule(len(data), time.monotonic()), data))
        except (ConnectionError, OSError):
            pass
        finally:
            await queue.put((0.0, None))
            try:
                await sender
            except (ConnectionError, OSError):
                pass
            try:
                writer.close()
            except (ConnectionError, OSError, RuntimeError):
                pass


__all__ = ["WanProxy"]

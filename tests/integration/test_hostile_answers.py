"""Hostile answers through the real command: a storage redirect to another host never carries the SAS,
an XML bomb in a listing and an oversized API answer are refused cleanly (clear error, right exit code)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytestmark = pytest.mark.integration

SAS = "sv=2026-10-06&se=2099-01-01T00%3A00%3A00Z&sr=c&sp=racwdl&sig=c2VjcmV0LXNpZ25hdHVyZS1mb3ItdGVzdHM%3D"


class Server:
    """A loopback HTTP server answering every request with ``answer(handler)``; records request lines."""

    def __init__(self, answer) -> None:
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                seen.append(f"{self.command} {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                answer(self)

            do_GET = do_HEAD = do_PUT = do_DELETE = do_POST = do_PATCH = _any

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers():
    made = []

    def make(answer):
        made.append(Server(answer))
        return made[-1]

    yield make
    for server in made:
        server.close()


def reply(handler, status: int, body: bytes = b"", headers: dict | None = None) -> None:
    handler.send_response(status)
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def test_a_storage_redirect_never_takes_the_sas_to_another_host(cli, servers, tmp_path):
    elsewhere = servers(lambda h: reply(h, 200, b"<EnumerationResults><Blobs/></EnumerationResults>"))
    redirector = servers(lambda h: reply(h, 307, headers={"Location": f"http://127.0.0.1:{elsewhere.port}{h.path}"}))
    url = f"http://127.0.0.1:{redirector.port}/devstoreaccount1/photos?{SAS}"
    cli.add_secret("c2VjcmV0LXNpZ25hdHVyZS1mb3ItdGVzdHM")
    (tmp_path / "a.txt").write_text("a")
    for args in (["ls", url], ["upload", str(tmp_path / "a.txt"), url, "--overwrite"],
                 ["download", url.replace("/photos?", "/photos/a.txt?"), str(tmp_path / "out") + "/"]):
        result = cli(*args)
        assert result.returncode != 0, result
        assert "307" in result.stderr and "Traceback" not in result.stderr, result
    assert redirector.seen, "the redirector was never asked"
    assert elsewhere.seen == [], elsewhere.seen  # nothing, let alone the SAS, went to the other host


def test_an_xml_bomb_in_a_listing_is_refused(cli, servers):
    bomb = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
            b"<EnumerationResults><Blobs><Blob><Name>&lol2;</Name></Blob></Blobs></EnumerationResults>")
    storage = servers(lambda h: reply(h, 200, bomb, {"Content-Type": "application/xml"}))
    result = cli("ls", f"http://127.0.0.1:{storage.port}/devstoreaccount1/photos?{SAS}")
    assert result.returncode == 1, result
    assert "DTD" in result.stderr and "Traceback" not in result.stderr, result


@pytest.mark.parametrize("body", [b"<not xml", b"<EnumerationResults><Blobs><Blob><Name>x</Name></Blob></Blobs></EnumerationResults>",
                                  b"<EnumerationResults><Blobs><Blob><Name>x</Name><Properties><Content-Length>-7"
                                  b"</Content-Length></Properties></Blob></Blobs></EnumerationResults>"])
def test_a_broken_listing_page_is_a_clear_error(cli, servers, body):
    storage = servers(lambda h: reply(h, 200, body))
    result = cli("ls", f"http://127.0.0.1:{storage.port}/devstoreaccount1/photos?{SAS}")
    assert result.returncode == 1, result
    assert "listing page" in result.stderr and "Traceback" not in result.stderr and "unexpected" not in result.stderr


def test_an_oversized_api_answer_is_refused_without_reading_it(cli, emulator, new_itwin):
    emulator.inject(r"/bucket$", 200, body="x" * (17 * 1024 * 1024))
    result = cli("url", f"itwin://{new_itwin}")
    assert result.returncode == 1, result
    assert "answered too much" in result.stderr and "Traceback" not in result.stderr, result

"""The plain list client: retries, a fresh SAS after a 403, cut-off bodies, proxies. Against a loopback
server that answers from a script (the integration tests run it against Azurite and the fault proxy)."""

from __future__ import annotations

import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bucket_sync.retry import Backoff
from bucket_sync.storage.list_http import API_VERSION, ConnectionFailed, ListClient, StorageHttpError, proxy_configured
from tests.support.sas_sources import RenewingSource


class Script:
    """Answers in order: (status, headers, body) or "cut" (close mid-body); the last one repeats."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.paths: list[str] = []


def serve(script: Script):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            script.paths.append(self.path)
            answer = script.answers.pop(0) if len(script.answers) > 1 else script.answers[0]
            if answer == "cut":
                self.send_response(200)
                self.send_header("Content-Length", "100")
                self.end_headers()
                self.wfile.write(b"<Enumera")
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            status, headers, body = answer
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def run():
    servers = []

    def start(*answers, attempts=4):
        script = Script(*answers)
        server = serve(script)
        servers.append(server)
        source = RenewingSource(f"http://127.0.0.1:{server.server_port}/acct/cont")
        client = ListClient(source.current().container_url, source, Backoff(attempts=attempts, sleep=lambda s: None))
        return client, script, source

    yield start
    for server in servers:
        server.shutdown()


OK = (200, {}, b"<EnumerationResults/>")


def test_throttling_and_server_errors_are_retried(run):
    client, script, _ = run((503, {"Retry-After": "0"}, b""), (500, {}, b"oops"), OK)
    assert client.get({"comp": "list", "prefix": "a b/"}, {"x-ms-version": API_VERSION}) == b"<EnumerationResults/>"
    assert len(script.paths) == 3
    assert script.paths[0] == "/acct/cont?comp=list&prefix=a%20b%2F&sv=1&sig=one"
    client.close()


def test_a_body_cut_off_midway_is_fetched_again(run):
    client, script, _ = run("cut", OK)
    assert client.get({"comp": "list"}, {}) == b"<EnumerationResults/>"
    assert len(script.paths) == 2
    client.close()


def test_a_403_gets_one_fresh_sas_and_one_resend(run):
    client, script, source = run((403, {"x-ms-error-code": "AuthenticationFailed"}, b""), OK)
    assert client.get({"comp": "list"}, {}) == b"<EnumerationResults/>"
    assert source.refreshes == 1 and script.paths[-1].endswith("sig=two")

    client, script, source = run((403, {"x-ms-error-code": "AuthenticationFailed"}, b""))
    with pytest.raises(StorageHttpError) as err:
        client.get({"comp": "list"}, {})
    assert (err.value.status, err.value.code) == (403, "AuthenticationFailed")
    assert source.refreshes == 1 and len(script.paths) == 2  # no loop: one refresh, one resend


def test_retries_end(run):
    client, script, _ = run((500, {"x-ms-error-code": "InternalError"}, b""), attempts=3)
    with pytest.raises(StorageHttpError) as err:
        client.get({"comp": "list"}, {})
    assert err.value.status == 500 and len(script.paths) == 3
    client, script, _ = run("cut", attempts=2)
    with pytest.raises(ConnectionFailed):
        client.get({"comp": "list"}, {})
    assert len(script.paths) == 2


def test_a_refused_connection_is_a_connection_failure():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    source = RenewingSource(f"http://127.0.0.1:{port}/acct/cont")
    client = ListClient(source.current().container_url, source, Backoff(attempts=2, sleep=lambda s: None))
    with pytest.raises(ConnectionFailed):
        client.get({"comp": "list"}, {})


@pytest.fixture
def proxy_env(monkeypatch):
    """Only the proxy variables a test sets (the developer's own never leak in)."""
    for key in list(os.environ):
        if key.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(key)

    def set_env(env):
        for key, value in env.items():
            monkeypatch.setenv(key, value)

    return set_env


@pytest.mark.parametrize("env, proxied", [
    ({}, False),
    ({"HTTPS_PROXY": "http://proxy:3128"}, True),
    ({"https_proxy": "http://proxy:3128", "NO_PROXY": "example.com"}, True),
    ({"https_proxy": "http://proxy:3128", "no_proxy": ".blob.core.windows.net"}, False),
    ({"ALL_PROXY": "http://proxy:3128", "NO_PROXY": "*"}, False),
    ({"HTTP_PROXY": "http://proxy:3128"}, False),  # an http proxy does not apply to https
])
def test_a_configured_proxy_sends_listing_through_the_sdk_transport(proxy_env, env, proxied):
    proxy_env(env)
    assert proxy_configured("https://acct.blob.core.windows.net/cont") is proxied


@pytest.mark.parametrize("system, bypassed, proxied", [
    ({"https": "http://corp-proxy:8080"}, False, True),  # Internet Settings (registry) / System Configuration
    ({"https": "http://corp-proxy:8080"}, True, False),  # ... with the host in ProxyOverride / its exceptions
    ({"http": "http://corp-proxy:8080"}, False, False),  # an http-only proxy does not carry https
    ({}, False, False),
])
def test_the_system_proxy_settings_count_like_the_environment(proxy_env, monkeypatch, system, bypassed, proxied):
    """As on Windows and macOS, where urllib.request.getproxies() and proxy_bypass() read the system's
    settings, which requests (the SDK's transport) honours too."""
    import urllib.request

    from bucket_sync.storage import list_http

    monkeypatch.setattr(list_http, "SYSTEM_PROXY_SETTINGS", True)
    monkeypatch.setattr(urllib.request, "getproxies", lambda: dict(system))
    asked = []
    monkeypatch.setattr(urllib.request, "proxy_bypass", lambda host: asked.append(host) or bypassed)
    assert proxy_configured("https://acct.blob.core.windows.net/cont") is proxied
    assert asked in ([], ["acct.blob.core.windows.net"])


def test_unreadable_system_settings_leave_the_listing_to_the_sdk_transport(proxy_env, monkeypatch):
    import urllib.request

    from bucket_sync.storage import list_http

    def broken():
        raise OSError("the registry cannot be read")

    monkeypatch.setattr(list_http, "SYSTEM_PROXY_SETTINGS", True)
    monkeypatch.setattr(urllib.request, "getproxies", broken)
    assert proxy_configured("https://acct.blob.core.windows.net/cont") is True


def test_our_requests_speak_the_sdks_api_version():
    from azure.storage.blob import ContainerClient

    assert ContainerClient.from_container_url("https://a.blob.core.windows.net/c").api_version == API_VERSION

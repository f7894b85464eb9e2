"""The platform emulator behaves like the real iTwin Platform API and IMS (checked with httpx directly),
and the SAS URLs it hands out are enforced by Azurite."""

from __future__ import annotations

import base64
import calendar
import hashlib
import json
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import ContainerClient

from devtools.azurite import REPO_ROOT
from tests.support.cli import find_leaks

pytestmark = pytest.mark.integration

V1 = "application/vnd.bentley.itwin-platform.v1+json"
V2 = "application/vnd.bentley.itwin-platform.v2+json"


@pytest.fixture
def http(emulator):
    with httpx.Client(base_url=emulator.url, timeout=10) as client:
        yield client


@pytest.fixture
def token(emulator, http) -> str:
    r = http.post("/connect/token", data={"grant_type": "client_credentials", "scope": "itwin-platform"},
                  auth=(emulator.client_id, emulator.client_secret))
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def claims(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def bucket(http, itwin, token, accept=V2):
    headers = {"Accept": accept}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return http.get(f"/reality-modeling/itwins/{itwin}/bucket", headers=headers)


def access(http, rd, token, kind="readaccess", itwin=None, accept=V1):
    params = {"iTwinId": itwin} if itwin else None
    return http.get(f"/reality-management/reality-data/{rd}/{kind}", params=params,
                    headers={"Accept": accept, "Authorization": f"Bearer {token}"})


def move(http, rd, token, body):
    return http.patch(f"/reality-management/reality-data/{rd}/move", json=body,
                      headers={"Accept": V1, "Authorization": f"Bearer {token}"})


def sas_href(response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["_links"]["containerUrl"]["href"]


def error_code(response) -> str:
    return response.json()["error"]["code"]


# -- IMS ----------------------------------------------------------------------------------------------

def test_client_credentials_by_basic_and_form(emulator, http):
    form = {"grant_type": "client_credentials", "scope": "itwin-platform"}
    by_basic = http.post("/connect/token", data=form, auth=(emulator.client_id, emulator.client_secret))
    by_form = http.post("/connect/token", data={**form, "client_id": emulator.client_id,
                                                 "client_secret": emulator.client_secret})
    for r in (by_basic, by_form):
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and "refresh_token" not in body
        c = claims(body["access_token"])
        assert c["email"] == f"{emulator.client_id}@apps.imsoidc.bentley.com"
        assert "itwin-platform" in c["scope"]
        assert abs(c["exp"] - (time.time() + 3600)) < 5
        assert body["access_token"] in emulator.issued_secrets()

    emulator.configure(token_lifetime=120)
    assert http.post("/connect/token", data=form, auth=(emulator.client_id, emulator.client_secret)).json()[
        "expires_in"] == 120


def test_token_endpoint_errors(emulator, http):
    form = {"grant_type": "client_credentials", "scope": "itwin-platform"}
    r = http.post("/connect/token", data=form, auth=(emulator.client_id, "wrong"))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = http.post("/connect/token", data=form)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = http.post("/connect/token", data={**form, "scope": "openid"}, auth=(emulator.client_id, emulator.client_secret))
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    r = http.post("/connect/token", data={**form, "grant_type": "password"},
                  auth=(emulator.client_id, emulator.client_secret))
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    assert emulator.client_secret not in r.text


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def test_pkce_code_flow_and_refresh(emulator, http, new_itwin):
    discovery = http.get("/.well-known/openid-configuration").json()
    assert discovery["token_endpoint"] == f"{emulator.url}/connect/token"
    assert urlsplit(discovery["authorization_endpoint"]).path == "/connect/authorize"

    verifier, challenge = _pkce()
    redirect_uri = "http://localhost:53117/signin-callback"
    emulator.register_client("native-cli", [redirect_uri])
    r = http.get(discovery["authorization_endpoint"], params={
        "response_type": "code", "client_id": "native-cli", "redirect_uri": redirect_uri,
        "scope": "itwin-platform offline_access", "state": "xyz", "code_challenge": challenge,
        "code_challenge_method": "S256"})
    assert r.status_code == 302
    location = urlsplit(r.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect_uri
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["state"] == "xyz"
    code = query["code"]

    exchange = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "client_id": "native-cli", "code_verifier": verifier}
    bad = http.post("/connect/token", data={**exchange, "code_verifier": _pkce()[0]})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"
    # A failed exchange burns the code (single use), so authorize again.
    r = http.get("/connect/authorize", params={
        "response_type": "code", "client_id": "native-cli", "redirect_uri": redirect_uri,
        "scope": "itwin-platform offline_access", "state": "s2", "code_challenge": challenge,
        "code_challenge_method": "S256"})
    exchange["code"] = parse_qs(urlsplit(r.headers["Location"]).query)["code"][0]
    tokens = http.post("/connect/token", data=exchange)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert claims(body["access_token"])["email"] == "user@example.com"
    assert bucket(http, new_itwin, body["access_token"]).status_code == 200
    assert http.post("/connect/token", data=exchange).json()["error"] == "invalid_grant"  # code reused

    refreshed = http.post("/connect/token", data={"grant_type": "refresh_token", "client_id": "native-cli",
                                                  "refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert new["access_token"] != body["access_token"] and new["refresh_token"] != body["refresh_token"]
    # Rotation: the old refresh token is spent.
    again = http.post("/connect/token", data={"grant_type": "refresh_token", "client_id": "native-cli",
                                              "refresh_token": body["refresh_token"]})
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"

    # expire_tokens(): access tokens die, refresh tokens still renew.
    emulator.expire_tokens()
    assert bucket(http, new_itwin, new["access_token"]).status_code == 401
    renewed = http.post("/connect/token", data={"grant_type": "refresh_token", "client_id": "native-cli",
                                                "refresh_token": new["refresh_token"]}).json()
    assert bucket(http, new_itwin, renewed["access_token"]).status_code == 200
    issued = emulator.issued_secrets()
    assert {code, body["access_token"], body["refresh_token"], new["refresh_token"]} <= issued


def test_authorize_requires_s256_and_loopback_redirect(emulator, http):
    _, challenge = _pkce()
    emulator.register_client("native-cli", ["http://127.0.0.1:5000/cb"])
    params = {"response_type": "code", "client_id": "native-cli", "redirect_uri": "http://127.0.0.1:5000/cb",
              "scope": "itwin-platform", "state": "s", "code_challenge": challenge}
    r = http.get("/connect/authorize", params={**params, "code_challenge_method": "plain"})
    assert r.status_code == 302
    assert parse_qs(urlsplit(r.headers["Location"]).query)["error"] == ["invalid_request"]
    r = http.get("/connect/authorize", params={**params, "code_challenge_method": "S256",
                                               "redirect_uri": "https://evil.example/cb"})
    assert r.status_code == 400 and "Location" not in r.headers


def authorize(http, client_id: str, redirect_uri: str, challenge: str, state: str = "st") -> httpx.Response:
    return http.get("/connect/authorize", params={
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
        "scope": "itwin-platform offline_access", "state": state, "code_challenge": challenge,
        "code_challenge_method": "S256"})


def test_authorize_accepts_only_the_redirect_uris_registered_for_the_client(emulator, http):
    _, challenge = _pkce()
    emulator.register_client("native-registered")  # the default registration
    ok = authorize(http, "native-registered", "http://localhost:3000/signin-callback", challenge)
    assert ok.status_code == 302 and ok.headers["Location"].startswith("http://localhost:3000/signin-callback?")

    # As IMS: exactly, port included; an error page of its own, never a redirect to the unregistered URI.
    for other in ("http://localhost:3001/signin-callback", "http://127.0.0.1:3000/signin-callback",
                  "http://localhost:3000/signin-callback/", "http://localhost:3000/other", "http://[::1]:3000/signin-callback"):
        page = authorize(http, "native-registered", other, challenge)
        assert page.status_code == 400 and "Location" not in page.headers, other
        assert page.headers["content-type"].startswith("text/html") and "redirect_uri" in page.text

    emulator.register_redirect_uri("native-registered", "http://localhost:3001/signin-callback")
    assert authorize(http, "native-registered", "http://localhost:3001/signin-callback", challenge).status_code == 302
    assert authorize(http, "native-registered", "http://localhost:3000/signin-callback", challenge).status_code == 302

    # Registrations are a test's own: reset() forgets them.
    emulator.reset()
    gone = authorize(http, "native-registered", "http://localhost:3000/signin-callback", challenge)
    assert gone.status_code == 400 and "Location" not in gone.headers


def test_authorize_shows_an_error_page_for_an_unknown_client_or_a_service_app(emulator, http):
    _, challenge = _pkce()
    for client_id in ("never-registered", emulator.client_id):
        page = authorize(http, client_id, "http://localhost:3000/signin-callback", challenge)
        assert page.status_code == 400 and "Location" not in page.headers
        assert "unauthorized_client" in page.text


def test_the_token_request_must_repeat_the_authorize_requests_redirect_uri(emulator, http):
    verifier, challenge = _pkce()
    emulator.register_client("native-two", ["http://localhost:3000/signin-callback",
                                            "http://localhost:3301/signin-callback"])
    r = authorize(http, "native-two", "http://localhost:3000/signin-callback", challenge)
    code = parse_qs(urlsplit(r.headers["Location"]).query)["code"][0]
    # Registered too, but not the one the code was issued for.
    exchange = {"grant_type": "authorization_code", "code": code, "client_id": "native-two",
                "redirect_uri": "http://localhost:3301/signin-callback", "code_verifier": verifier}
    bad = http.post("/connect/token", data=exchange)
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"
    assert "redirect_uri" in bad.json()["error_description"]


def test_an_unknown_client_at_the_token_endpoint_is_401_unknown_client(emulator, http):
    def assert_unknown(r):
        assert r.status_code == 401, r.text
        body = r.json()
        assert body["error"] == "invalid_client"  # still what an OAuth client reads
        assert body["details"] == [{"code": "UnknownClient",
                                    "message": "Client was not registered on https://developer.bentley.com."}]

    form = {"grant_type": "client_credentials", "scope": "itwin-platform"}
    assert_unknown(http.post("/connect/token", data=form, auth=("no-such-service-app", "some-secret")))
    assert_unknown(http.post("/connect/token", data={**form, "client_id": "no-such-service-app",
                                                      "client_secret": "some-secret"}))
    verifier, _ = _pkce()
    assert_unknown(http.post("/connect/token", data={
        "grant_type": "authorization_code", "code": "x", "client_id": "no-such-native-app",
        "redirect_uri": "http://localhost:3000/signin-callback", "code_verifier": verifier}))
    assert_unknown(http.post("/connect/token", data={"grant_type": "refresh_token", "client_id": "no-such-native-app",
                                                      "refresh_token": "x"}))
    # A known service app with a wrong secret is not "unknown": plain invalid_client, as before.
    wrong = http.post("/connect/token", data=form, auth=(emulator.client_id, "wrong"))
    assert wrong.status_code == 401 and "details" not in wrong.json()
    # A Native app cannot use client credentials.
    emulator.register_client("native-only")
    r = http.post("/connect/token", data={**form, "client_id": "native-only", "client_secret": "x"})
    assert r.status_code == 400 and r.json()["error"] == "unauthorized_client"


def test_client_registrations_over_the_admin_http_api(emulator, http):
    _, challenge = _pkce()
    uri = "http://localhost:45678/signin-callback"
    assert http.post("/_emulator/clients", json={"client_id": "native-admin"}).status_code == 204
    assert http.post("/_emulator/redirect-uris", json={"client_id": "native-admin", "uri": uri}).status_code == 204
    assert authorize(http, "native-admin", uri, challenge).status_code == 302
    clients = {c["clientId"]: c for c in http.get("/_emulator/state").json()["clients"]}
    assert clients["native-admin"] == {"clientId": "native-admin", "kind": "native",
                                       "redirectUris": ["http://localhost:3000/signin-callback", uri]}
    assert clients[emulator.client_id]["kind"] == "service"
    assert emulator.client_secret not in http.get("/_emulator/state").text
    # Refused: an unregistered app, a URI the emulator could not redirect a test's browser to.
    assert http.post("/_emulator/redirect-uris", json={"client_id": "nobody", "uri": uri}).status_code == 400
    assert http.post("/_emulator/redirect-uris", json={"client_id": "native-admin",
                                                       "uri": "https://evil.example/cb"}).status_code == 400
    assert http.post("/_emulator/clients", json={"client_id": emulator.client_id}).status_code == 400


# -- Reality Modeling bucket ----------------------------------------------------------------------------

def test_bucket_sas_works_against_azurite(emulator, http, token, listing_itwin, bucket_container):
    r = bucket(http, listing_itwin, token)
    assert r.json()["bucket"] == {"iTwinId": listing_itwin}
    href = sas_href(r)
    parts = urlsplit(href)
    assert parts.path == f"/devstoreaccount1/bucket-{listing_itwin}"
    query = parse_qs(parts.query)
    assert query["sp"] == ["racwdl"] and query["sr"] == ["c"]  # asked for with add_itwin(permissions=...)
    assert query["sig"][0] in emulator.issued_secrets()

    container = ContainerClient.from_container_url(href)
    container.upload_blob("dir/hello.txt", b"hello")
    assert [b.name for b in container.list_blobs()] == ["dir/hello.txt"]
    assert bucket_container(listing_itwin).download_blob("dir/hello.txt").readall() == b"hello"
    assert emulator.request_count(r"/bucket$", method="GET", status=200) == 1


def test_bucket_errors(emulator, http, token, new_itwin):
    r = bucket(http, new_itwin, None)
    assert r.status_code == 401 and r.json()["error"] == {
        "code": "HeaderNotFound", "message": "Header Authorization was not found in the request. Access denied."}
    r = bucket(http, new_itwin, "not-a-token")
    assert r.status_code == 401 and error_code(r) == "Unauthorized"

    r = bucket(http, str(uuid.uuid4()), token)
    assert r.status_code == 404 and error_code(r) == "iTwinNotFound"
    r = bucket(http, new_itwin, token, accept=V1)
    assert r.status_code == 404 and error_code(r) == "ResourceNotFound"
    r = bucket(http, new_itwin, token, accept="*/*")
    assert r.status_code == 404 and error_code(r) == "ResourceNotFound"
    r = http.get(f"/reality-modeling/itwins/{new_itwin}/bucket", headers={"Authorization": f"Bearer {token}",
                                                                          "Accept": ""})
    assert r.status_code == 200  # a missing Accept is tolerated

    unsupported = emulator.add_itwin(datacenter_supported=False)
    r = bucket(http, unsupported, token)
    assert r.status_code == 400 and r.json()["error"] == {
        "code": "InvalidRealityModelingRequest", "message": "Could not retrieve the bucket.",
        "details": [{"code": "InvalidProperty", "message": "iTwin data center location is not supported."}]}

    emulator.expire_tokens()
    r = bucket(http, new_itwin, token)
    assert r.status_code == 401 and error_code(r) == "Unauthorized"
    # Only the path is logged, never a query string.
    assert all("?" not in path for _, path, _ in emulator.requests)


def test_sas_lifetime_is_enforced_by_azurite(emulator, http, token, listing_itwin):
    emulator.configure(sas_lifetime=2)
    href = sas_href(bucket(http, listing_itwin, token))
    expiry = parse_qs(urlsplit(href).query)["se"][0]
    assert abs(calendar.timegm(time.strptime(expiry, "%Y-%m-%dT%H:%M:%SZ")) - time.time()) < 3
    container = ContainerClient.from_container_url(href)
    list(container.list_blobs())
    time.sleep(3)
    with pytest.raises(HttpResponseError) as err:
        list(container.list_blobs())
    assert err.value.status_code == 403


def test_bucket_sas_is_the_documented_rw_by_default(emulator, http, token, new_itwin):
    """The Get bucket page documents sp=rw: read and write, no list, no delete. So does the emulator."""
    href = sas_href(bucket(http, new_itwin, token))
    assert parse_qs(urlsplit(href).query)["sp"] == ["rw"]
    container = ContainerClient.from_container_url(href)
    container.upload_blob("a.txt", b"a")
    assert container.download_blob("a.txt").readall() == b"a"
    with pytest.raises(HttpResponseError) as err:
        list(container.list_blobs())
    assert err.value.status_code == 403 and err.value.error_code == "AuthorizationPermissionMismatch"
    with pytest.raises(HttpResponseError) as err:
        container.delete_blob("a.txt")
    assert err.value.status_code == 403 and err.value.error_code == "AuthorizationPermissionMismatch"


def test_reality_data_access_defaults_and_what_a_test_can_ask_for(emulator, http, token):
    rd = emulator.add_reality_data()
    itwin = emulator.reality_data_itwin(rd)

    def sp(kind):
        return parse_qs(urlsplit(sas_href(access(http, rd, token, kind, itwin=itwin))).query)["sp"][0]

    # Read access is documented as rl; write access is not documented: by default it cannot list.
    assert sp("readaccess") == "rl" and sp("writeaccess") == "racwd"
    emulator.configure_reality_data(rd, write_permissions="racwdl")
    assert sp("writeaccess") == "racwdl"


# -- fault injection ----------------------------------------------------------------------------------

def test_injected_429_then_success(emulator, http, token, new_itwin):
    emulator.inject(r"/bucket$", 429, times=2, retry_after=1)
    for _ in range(2):
        r = bucket(http, new_itwin, token)
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"
        assert error_code(r) == "RateLimitExceeded"
    assert bucket(http, new_itwin, token).status_code == 200
    assert emulator.request_count(r"/bucket$") == 3
    assert [s for _, path, s in emulator.requests if path.endswith("/bucket")] == [429, 429, 200]


def test_admin_http_api(emulator, http, token):
    r = http.post("/_emulator/itwins", json={})
    assert r.status_code == 201
    itwin = r.json()["iTwinId"]
    assert http.post("/_emulator/inject", json={"path_regex": "/bucket$", "status": 503,
                                                "method": "GET"}).status_code == 204
    r = bucket(http, itwin, token)
    assert r.status_code == 503 and error_code(r) == "ServiceUnavailable"
    assert http.post("/_emulator/inject", json={"path_regex": "/bucket$", "status": 502,
                                                "body": "<html>Bad gateway</html>"}).status_code == 204
    r = bucket(http, itwin, token)
    assert r.status_code == 502 and r.headers["content-type"].startswith("text/html")
    assert http.post("/_emulator/inject", json={"path_regex": "/bucket$", "status": 0}).status_code == 204
    with pytest.raises(httpx.TransportError):
        bucket(http, itwin, token)
    assert bucket(http, itwin, token).status_code == 200

    assert http.post("/_emulator/configure", json={"sas_lifetime": 60}).status_code == 204
    assert parse_qs(urlsplit(sas_href(bucket(http, itwin, token))).query)["se"]
    assert http.post("/_emulator/expire-tokens").status_code == 204
    assert bucket(http, itwin, token).status_code == 401
    seen = http.get("/_emulator/requests").json()["requests"]
    assert [x["status"] for x in seen if x["path"].endswith("/bucket")] == [503, 502, 0, 200, 200, 401]
    assert http.post("/_emulator/inject", json={"bogus": 1}).status_code == 400
    assert http.post("/_emulator/reset").status_code == 204
    assert emulator.requests == [] and emulator.sas_lifetime == 3600


# -- Reality Management -------------------------------------------------------------------------------

def test_reality_data_read_sas_cannot_write(emulator, http, token, new_reality_data):
    itwin = emulator.reality_data_itwin(new_reality_data)
    write = access(http, new_reality_data, token, "writeaccess", itwin=itwin)
    assert write.json()["type"] == "AzureBlobSasUrl" and write.json()["access"] == "Write"
    assert urlsplit(sas_href(write)).path == f"/devstoreaccount1/rd-{new_reality_data}"
    ContainerClient.from_container_url(sas_href(write)).upload_blob("tile.b3dm", b"123")

    read = access(http, new_reality_data, token)
    assert read.json()["access"] == "Read"
    reader = ContainerClient.from_container_url(sas_href(read))
    assert [b.name for b in reader.list_blobs()] == ["tile.b3dm"]
    assert reader.download_blob("tile.b3dm").readall() == b"123"
    with pytest.raises(HttpResponseError) as err:
        reader.upload_blob("other", b"x")
    assert err.value.status_code == 403


def test_reality_data_errors(emulator, http, token, new_reality_data, new_itwin):
    r = access(http, str(uuid.uuid4()), token)
    assert r.status_code == 404 and error_code(r) == "RealityDataNotFound"
    r = access(http, new_reality_data, token, itwin=new_itwin)  # not associated with that iTwin
    assert r.status_code == 404 and error_code(r) == "RealityDataNotFound"
    r = access(http, new_reality_data, token, accept=V2)
    assert r.status_code == 404 and error_code(r) == "ResourceNotFound"
    r = access(http, "not-a-guid", token)
    assert r.status_code == 422 and error_code(r) == "InvalidRealityDataRequest"


def test_move(emulator, http, token, new_reality_data, new_itwin):
    rd, source = new_reality_data, emulator.reality_data_itwin(new_reality_data)

    r = move(http, rd, token, {"iTwinId": "028cb17d-01e5-4d92-bfee-89b201a92"})
    assert r.status_code == 422 and r.json()["error"] == {
        "code": "InvalidRealityDataRequest", "message": "Invalid RealityData request.",
        "details": [{"code": "InvalidValue", "message": "The value '028cb17d-01e5-4d92-bfee-89b201a92' is not valid.",
                     "target": "iTwinId"}]}
    r = move(http, rd, token, {})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["target"] == "iTwinId"
    r = move(http, str(uuid.uuid4()), token, {"iTwinId": new_itwin})
    assert r.status_code == 404 and error_code(r) == "RealityDataNotFound"
    r = move(http, rd, token, {"iTwinId": str(uuid.uuid4())})
    assert r.status_code == 404
    r = move(http, rd, token, {"iTwinId": source})
    assert r.status_code == 409 and error_code(r) == "AlreadyExists"

    other_org = emulator.add_itwin(organization="org-2")
    r = move(http, rd, token, {"iTwinId": other_org})
    assert r.status_code == 403 and error_code(r) == "InsufficientPermissions"
    emulator.deny_move_for(rd)
    assert move(http, rd, token, {"iTwinId": new_itwin}).status_code == 403
    emulator.reset()

    r = move(http, rd, token, {"iTwinId": new_itwin})
    assert r.status_code == 204 and r.content == b""
    assert emulator.reality_data_itwin(rd) == new_itwin
    assert access(http, rd, token, itwin=source).status_code == 404
    assert access(http, rd, token, itwin=new_itwin).status_code == 200
    assert move(http, rd, token, {"iTwinId": new_itwin}).status_code == 409
    r = http.patch(f"/reality-management/reality-data/{rd}/move", json={"iTwinId": source}, headers={"Accept": V1})
    assert r.status_code == 401 and error_code(r) == "HeaderNotFound"


def test_a_fault_after_handling_does_the_work_and_loses_the_answer(emulator, http, token, new_reality_data, new_itwin):
    rd = new_reality_data
    emulator.inject(r"/move$", 503, retry_after=1, after_handling=True)
    r = move(http, rd, token, {"iTwinId": new_itwin})
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert emulator.reality_data_itwin(rd) == new_itwin  # moved all the same
    again = move(http, rd, token, {"iTwinId": new_itwin})
    assert again.status_code == 409 and error_code(again) == "AlreadyExists"


# -- standalone server and the leak checker -----------------------------------------------------------

def test_standalone_emulator(azurite):
    itwin = str(uuid.uuid4())
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.emulator", "--azurite-port", str(azurite.port), "--itwin", itwin,
         "--sas-lifetime", "600"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        values = {}
        while len(values) < 4:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            key, _, value = line.strip().partition("=")
            values[key] = value
        with httpx.Client(base_url=values["ITWIN_API_URL"], timeout=10) as client:
            r = client.post("/connect/token", data={"grant_type": "client_credentials", "scope": "itwin-platform"},
                            auth=(values["ITWIN_CLIENT_ID"], values["ITWIN_CLIENT_SECRET"]))
            tok = r.json()["access_token"]
            href = sas_href(bucket(client, itwin, tok))
            se = parse_qs(urlsplit(href).query)["se"][0]
            assert calendar.timegm(time.strptime(se, "%Y-%m-%dT%H:%M:%SZ")) - time.time() < 700
            ContainerClient.from_container_url(href).upload_blob("x", b"x")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "GET /reality-modeling/itwins/" in err
    assert tok not in err and values["ITWIN_CLIENT_SECRET"] not in err and "sig=" not in err


def test_azurite_factory_restart_keeps_blobs_and_port(azurite_factory):
    server = azurite_factory()
    server.create_container("outage")
    url = server.container_sas_url("outage")
    ContainerClient.from_container_url(url).upload_blob("kept", b"1")
    port = server.port
    server.stop()
    with pytest.raises(Exception):  # noqa: B017 - whichever error the SDK raises for a refused connection
        ContainerClient.from_container_url(url, retry_total=0).upload_blob("lost", b"2")
    server.start()
    assert server.port == port
    assert [b.name for b in ContainerClient.from_container_url(url).list_blobs()] == ["kept"]
    server.restart()
    assert server.container_client("outage").download_blob("kept").readall() == b"1"


def test_leak_checker_never_shows_the_secret():
    secret = "s3cr3t-" + secrets.token_hex(16)
    problems = find_leaks({"stderr": f"token was {secret} oops", "stdout": "clean"}, {secret})
    assert len(problems) == 1 and "stderr" in problems[0] and secret not in problems[0]
    assert find_leaks({"stdout": "nothing here"}, {secret}) == []


def test_scripts_are_executable():
    for script in ("scripts/setup", "scripts/test", "scripts/demo", ".ci/run"):
        path = Path(REPO_ROOT, script)
        assert path.exists() and path.stat().st_mode & 0o111, script

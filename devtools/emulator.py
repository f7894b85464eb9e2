"""A local stand-in for the iTwin Platform API and Bentley IMS, backed by a real Azurite.

One HTTP server on 127.0.0.1 answers both as ``{api}`` (``ITWIN_API_URL``) and as ``{ims}``
(``ITWIN_IMS_URL``), with the paths, JSON shapes and error bodies of the real services
(as the iTwin Platform and IMS documentation describe them). The SAS URLs it hands out are real Azurite container
SAS, so a client that works here works against Azure storage the same way.

    with AzuriteServer() as azurite, PlatformEmulator(azurite) as emu:
        itwin = emu.add_itwin()                          # container bucket-<itwin> created
        emu.inject(r"/bucket$", 429, retry_after=1)      # next bucket call is rate limited
        ... run the client with ITWIN_API_URL=ITWIN_IMS_URL=emu.url,
            ITWIN_CLIENT_ID=emu.client_id, ITWIN_CLIENT_SECRET=emu.client_secret ...
        assert emu.request_count(r"/bucket$") == 2

Test controls (Python methods, and the same over HTTP as ``POST /_emulator/<name>`` with a JSON object of
the same keyword arguments, for the standalone server and the demo):

    itwins         add_itwin(itwin_id=None, datacenter_supported=True, permissions="rw",
                             organization="org-1", datacenter="eastus")  -> {"iTwinId"}
    reality-data   add_reality_data(rd_id=None, itwin_id=None, write_permissions="racwd",
                                    read_permissions="rl", display_name=None, rd_type="Unstructured",
                                    authoring=False)                    -> {"realityDataId", "iTwinId"}
    share-reality-data  share_reality_data(rd_id, itwin_id)   (associate it with a second iTwin too)
    configure-itwin     configure_itwin(itwin_id, denied_permissions=["realitydata_create", ...], ...)
    deny-move      deny_move_for(rd_id)
    inject         inject(path_regex, status, times=1, retry_after=None, body=None, method=None, delay=0,
                          after_handling=False)
    clients        register_client(client_id, redirect_uris=None)   (a Native app; default redirect URI
                                                                     http://localhost:3000/signin-callback)
    redirect-uris  register_redirect_uri(client_id, uri)
    expire-tokens  expire_tokens(refresh=False)
    configure      configure(sas_lifetime=None, token_lifetime=None)
    reset          reset()
    GET /_emulator/requests  -> {"requests": [{"method","path","status"}, ...]}
    GET /_emulator/state     -> registered iTwins and reality data (each with its properties and its
                                history: what happened to it, with authoring and the blob count then)

Reality Management v1 (devtools/emulator_reality_data.py): create (POST), list (GET, paged by $top and
continuationToken, _links.next.href; Prefer return=minimal by default or return=representation), details,
update (PATCH) and delete of reality data, with 401/403/404/422 as documented. A reality data created
through the API gets its Azurite container rd-<id> and the same read (rl) and write (racwd) access as
add_reality_data. Permissions are granted unless denied per iTwin (configure_itwin(denied_permissions=...)):
realitydata_create (create), realitydata_use (list, details, read access), realitydata_manage (update,
delete, write access).

The emulator never prints a secret: its request log shows method, path (no query string) and status.

Standalone: ``python -m devtools.emulator --azurite-port N [--port M] [--itwin GUID ...]`` prints
``ITWIN_API_URL=...`` style lines (including the demo client secret) on stdout for a script to read.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from . import emulator_reality_data as rdm
from .emulator_auth import AuthServer, Reply, parse_form
from .emulator_reality_data import RealityDataRecord

GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
ACCEPT_V1 = "application/vnd.bentley.itwin-platform.v1+json"
ACCEPT_V2 = "application/vnd.bentley.itwin-platform.v2+json"
# The documented truth: the Get bucket page shows a bucket SAS of sp=rw (no list, no delete), and read
# access is sp=rl. Write access permissions are not documented; Bentley's SDK writes and deletes through
# it and lists only through read access, so by default it cannot list here. A test that needs more asks.
BUCKET_PERMISSIONS = "rw"
READ_PERMISSIONS = "rl"
WRITE_PERMISSIONS = "racwd"
# What a test asks for when it needs a bucket that can list and delete (real buckets may grant it).
FULL_PERMISSIONS = "racwdl"


def is_guid(value: str | None) -> bool:
    return bool(value) and bool(GUID_RE.match(value))


def api_error(status: int, code: str, message: str, details: list[dict] | None = None, headers=None) -> Reply:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return Reply.json(status, {"error": error}, headers)


def invalid_value(value: object, target: str) -> dict:
    return {"code": "InvalidValue", "message": f"The value '{value}' is not valid.", "target": target}


# Bodies of the real services, reused by handlers and as defaults for injected faults.
HEADER_NOT_FOUND = ("HeaderNotFound", "Header Authorization was not found in the request. Access denied.")
INVALID_TOKEN = (
    "Unauthorized",
    "Access denied due to invalid access_token. Make sure to provide a valid token for this API endpoint.",
)
RESOURCE_NOT_FOUND = ("ResourceNotFound", "The requested resource was not found.")
ITWIN_NOT_FOUND = ("iTwinNotFound", "Requested iTwin is not available.")
RD_NOT_FOUND = ("RealityDataNotFound", "Requested reality data is not available.")
INSUFFICIENT = ("InsufficientPermissions", "The user has insufficient permissions for the requested operation.")
RATE_LIMITED = (
    "RateLimitExceeded",
    "The client sent more requests than allowed by this API for the current tier of the client.",
)
DEFAULT_FAULT_BODIES = {
    400: ("BadRequest", "The request is invalid."),
    401: INVALID_TOKEN,
    403: INSUFFICIENT,
    404: RESOURCE_NOT_FOUND,
    409: ("Conflict", "The request conflicts with the current state."),
    429: RATE_LIMITED,
    500: ("InternalServerError", "The server encountered an internal error. Please retry the request."),
    502: ("BadGateway", "The gateway received an invalid response."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Please retry later."),
    504: ("GatewayTimeout", "The gateway timed out."),
}


@dataclass
class ITwin:
    itwin_id: str
    container: str
    datacenter_supported: bool = True
    permissions: str = BUCKET_PERMISSIONS
    organization: str = "org-1"
    datacenter: str = "eastus"
    # Reality data permissions the caller lacks on this iTwin (realitydata_create / _use / _manage).
    denied_permissions: list[str] = field(default_factory=list)


RealityData = RealityDataRecord  # the name tests and scripts knew


@dataclass
class Fault:
    path_regex: re.Pattern
    status: int  # 0: drop the connection without an answer
    times: int | None  # None: until reset()
    retry_after: int | str | None
    body: Any
    method: str | None
    delay: float
    after_handling: bool = False  # the request is served first; the fault replaces (or drops) its answer


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern
    handler: str  # name of a PlatformEmulator method: (request, **groups) -> Reply
    accept: str | None = None  # API routes: required Accept media type; None: IMS route, no bearer check


def _route(method: str, pattern: str, handler: str, accept: str | None = None) -> Route:
    return Route(method, re.compile(pattern), handler, accept)


ROUTES = [
    _route("GET", r"/\.well-known/openid-configuration", "_discovery"),
    _route("GET", r"/connect/authorize", "_authorize"),
    _route("POST", r"/connect/token", "_token"),
    _route("GET", r"/reality-modeling/itwins/(?P<itwin_id>[^/]+)/bucket", "_get_bucket", ACCEPT_V2),
    _route("GET", r"/reality-management/reality-data/(?P<rd_id>[^/]+)/(?P<access>readaccess|writeaccess)",
           "_get_access", ACCEPT_V1),
    _route("PATCH", r"/reality-management/reality-data/(?P<rd_id>[^/]+)/move", "_move", ACCEPT_V1),
    _route("GET", r"/reality-management/reality-data/?", "_list_reality_data", ACCEPT_V1),
    _route("POST", r"/reality-management/reality-data/?", "_create_reality_data", ACCEPT_V1),
    _route("GET", r"/reality-management/reality-data/(?P<rd_id>[^/]+)", "_get_reality_data", ACCEPT_V1),
    _route("PATCH", r"/reality-management/reality-data/(?P<rd_id>[^/]+)", "_update_reality_data", ACCEPT_V1),
    _route("DELETE", r"/reality-management/reality-data/(?P<rd_id>[^/]+)", "_delete_reality_data", ACCEPT_V1),
]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Any  # email.message.Message: case-insensitive
    body: bytes


class PlatformEmulator:
    def __init__(
        self,
        azurite: Any,
        *,
        port: int = 0,
        sas_lifetime: float = 3600,
        token_lifetime: float = 3600,
        log: Callable[[str], None] | None = None,
    ) -> None:
        """``azurite``: anything with ``account_name``, ``account_key``, ``blob_endpoint`` (an AzuriteServer)."""
        self.azurite = azurite
        self._port = port
        self._defaults = {"sas_lifetime": sas_lifetime, "token_lifetime": token_lifetime}
        self.sas_lifetime = sas_lifetime
        self.auth = AuthServer(token_lifetime=token_lifetime)
        self._log = log
        self._lock = threading.RLock()
        self._itwins: dict[str, ITwin] = {}
        self._reality_data: dict[str, RealityData] = {}
        self._deny_move: set[str] = set()
        self._faults: list[Fault] = []
        self._requests: list[tuple[str, str, int]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "emulator not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def port(self) -> int:
        assert self._server is not None, "emulator not started"
        return self._server.server_address[1]

    @property
    def client_id(self) -> str:
        return self.auth.client_id

    @property
    def client_secret(self) -> str:
        return self.auth.client_secret

    def start(self) -> "PlatformEmulator":
        if self._server is not None:
            return self
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), _make_handler(self))
        self._server.daemon_threads = True
        self.auth.issuer = self.url
        self._thread = threading.Thread(target=self._server.serve_forever, name="platform-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "PlatformEmulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- registrations -----------------------------------------------------------------------------
    def add_itwin(
        self,
        itwin_id: str | None = None,
        datacenter_supported: bool = True,
        permissions: str = BUCKET_PERMISSIONS,
        organization: str = "org-1",
        datacenter: str = "eastus",
    ) -> str:
        """Register an iTwin (a fresh GUID unless given) and create its container ``bucket-<id>``."""
        itwin_id = (itwin_id or str(uuid.uuid4())).lower()
        if not is_guid(itwin_id):
            raise ValueError(f"not a GUID: {itwin_id!r}")
        record = ITwin(itwin_id, f"bucket-{itwin_id}", datacenter_supported, permissions, organization, datacenter)
        self.azurite.create_container(record.container)
        with self._lock:
            self._itwins[itwin_id] = record
        return itwin_id

    def configure_itwin(self, itwin_id: str, **changes: Any) -> None:
        """Change a registered iTwin, e.g. ``permissions="rw"`` or ``datacenter_supported=False``."""
        with self._lock:
            record = self._itwins[itwin_id.lower()]
            for key, value in changes.items():
                if key not in ("datacenter_supported", "permissions", "organization", "datacenter",
                               "denied_permissions"):
                    raise TypeError(f"unknown iTwin setting {key!r}")
                setattr(record, key, list(value) if key == "denied_permissions" else value)

    def add_reality_data(self, rd_id: str | None = None, itwin_id: str | None = None,
                         write_permissions: str = WRITE_PERMISSIONS, read_permissions: str = READ_PERMISSIONS,
                         display_name: str | None = None, rd_type: str = "Unstructured", authoring: bool = False) -> str:
        """Register a reality data (container ``rd-<id>``) in ``itwin_id`` (a new iTwin if None); its
        write access SAS grants ``write_permissions``, its read access ``read_permissions``."""
        rd_id = (rd_id or str(uuid.uuid4())).lower()
        if not is_guid(rd_id):
            raise ValueError(f"not a GUID: {rd_id!r}")
        itwin_id = (itwin_id or self.add_itwin()).lower()
        with self._lock:
            if itwin_id not in self._itwins:
                raise KeyError(f"iTwin {itwin_id} is not registered: add_itwin() first")
        record = RealityData(rd_id, f"rd-{rd_id}", itwin_id, write_permissions, read_permissions,
                             display_name=display_name or f"Reality data {rd_id[:8]}", type=rd_type,
                             authoring=bool(authoring), owner_id=self.auth.client_sub)
        self.azurite.create_container(record.container)
        with self._lock:
            self._reality_data[rd_id] = record
            record.record("created", 0)
        return rd_id

    def share_reality_data(self, rd_id: str, itwin_id: str) -> None:
        """Associate a reality data with another registered iTwin too (it can then not be deleted)."""
        with self._lock:
            record = self._reality_data[rd_id.lower()]
            if itwin_id.lower() not in self._itwins:
                raise KeyError(f"iTwin {itwin_id} is not registered: add_itwin() first")
            if not record.associated(itwin_id.lower()):
                record.shared_with.append(itwin_id.lower())

    def reality_data_record(self, rd_id: str) -> dict:
        """Everything the emulator holds about a reality data (its properties and history), as a dict;
        empty when there is none (never created, or deleted)."""
        with self._lock:
            record = self._reality_data.get(rd_id.lower())
            return asdict(record) if record else {}

    def configure_reality_data(self, rd_id: str, **changes: Any) -> None:
        """Change a registered reality data, e.g. ``write_permissions="racwdl"``."""
        with self._lock:
            record = self._reality_data[rd_id.lower()]
            for key, value in changes.items():
                if key not in ("write_permissions", "read_permissions", "authoring", "display_name", "type"):
                    raise TypeError(f"unknown reality data setting {key!r}")
                setattr(record, key, value)

    def reality_data_itwin(self, rd_id: str) -> str:
        """The iTwin a reality data belongs to now (after moves)."""
        with self._lock:
            return self._reality_data[rd_id.lower()].itwin_id

    def deny_move_for(self, rd_id: str) -> None:
        """Moving this reality data answers 403 InsufficientPermissions (until reset())."""
        with self._lock:
            self._deny_move.add(rd_id.lower())

    # -- test controls -----------------------------------------------------------------------------
    def inject(
        self,
        path_regex: str,
        status: int,
        times: int | None = 1,
        retry_after: int | str | None = None,
        body: Any = None,
        method: str | None = None,
        delay: float = 0,
        after_handling: bool = False,
    ) -> None:
        """Answer the next ``times`` requests whose path matches (re.search) with ``status``.

        ``body``: a dict/list (JSON), a str (sent as text/html if it starts with ``<``, else text/plain),
        or None for the real service's error body for that status. ``status=0`` drops the connection
        without an answer. ``times=None`` keeps the fault until reset(). ``delay`` seconds before answering.
        ``after_handling``: the request is served (a move moves) and only its answer is replaced, as by a
        gateway that gave up while the service did the work.
        """
        fault = Fault(re.compile(path_regex), int(status), times, retry_after, body,
                      method.upper() if method else None, float(delay), bool(after_handling))
        with self._lock:
            self._faults.append(fault)

    def register_client(self, client_id: str, redirect_uris: list[str] | None = None) -> None:
        """Register a Native app (authorization code + PKCE) with these redirect URIs (default
        ``["http://localhost:3000/signin-callback"]``), until reset(). IMS accepts only these, exactly."""
        self.auth.register_client(client_id, redirect_uris)

    def register_redirect_uri(self, client_id: str, uri: str) -> None:
        """Add a redirect URI to a registered Native app (e.g. a free port the test picked), until reset()."""
        self.auth.register_redirect_uri(client_id, uri)

    def expire_tokens(self, refresh: bool = False) -> None:
        """Every access token issued so far is now refused with 401 (refresh tokens too if ``refresh``)."""
        self.auth.expire_tokens(refresh=refresh)

    def configure(self, sas_lifetime: float | None = None, token_lifetime: float | None = None) -> None:
        with self._lock:
            if sas_lifetime is not None:
                self.sas_lifetime = sas_lifetime
            if token_lifetime is not None:
                self.auth.token_lifetime = token_lifetime

    def reset(self) -> None:
        """Clear faults, move denials, Native apps and the request log; restore lifetimes. iTwins and reality
        data stay."""
        self.auth.reset_clients()
        with self._lock:
            self._faults.clear()
            self._deny_move.clear()
            self._requests.clear()
            self.sas_lifetime = self._defaults["sas_lifetime"]
            self.auth.token_lifetime = self._defaults["token_lifetime"]

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request answered since the last reset(), admin calls excluded."""
        with self._lock:
            return list(self._requests)

    def request_count(self, path_regex: str, method: str | None = None, status: int | None = None) -> int:
        pattern = re.compile(path_regex)
        return sum(
            1
            for m, p, s in self.requests
            if pattern.search(p) and (method is None or m == method.upper()) and (status is None or s == status)
        )

    def issued_secrets(self) -> frozenset[str]:
        """Every access/refresh/id token, auth code, client secret and SAS ``sig`` (raw and URL-encoded)."""
        with self.auth.lock:
            return frozenset(self.auth.secrets)

    def issue_access_token(self, lifetime: float | None = None, scopes: list[str] | None = None) -> str:
        """A valid user access token minted directly (for ``ITWIN_ACCESS_TOKEN`` tests)."""
        return self.auth.issue_access_token(lifetime=lifetime, scopes=scopes)[0]

    def state(self) -> dict:
        with self._lock:
            return {
                "itwins": [asdict(i) for i in self._itwins.values()],
                "realityData": [asdict(r) for r in self._reality_data.values()],
                "sasLifetime": self.sas_lifetime,
                "tokenLifetime": self.auth.token_lifetime,
                "clients": self.auth.client_registrations(),
            }

    # -- request handling --------------------------------------------------------------------------
    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if (fault.method is None or fault.method == method) and fault.path_regex.search(path):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def _fault_reply(self, fault: Fault, path: str) -> Reply:
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        if isinstance(fault.body, (dict, list)):
            return Reply.json(fault.status, fault.body, headers)
        if isinstance(fault.body, str):
            ctype = "text/html; charset=utf-8" if fault.body.lstrip().startswith("<") else "text/plain; charset=utf-8"
            return Reply(fault.status, fault.body.encode(), {"Content-Type": ctype, **headers})
        if path.startswith("/connect/"):  # IMS speaks OAuth errors
            error = "temporarily_unavailable" if fault.status >= 500 or fault.status == 429 else "invalid_request"
            return Reply.json(fault.status, {"error": error, "error_description": "Injected fault."}, headers)
        code, message = DEFAULT_FAULT_BODIES.get(fault.status, ("Error", "Injected fault."))
        return api_error(fault.status, code, message, headers=headers)

    def handle(self, request: Request) -> Reply | None:
        """Answer one client request; None means: drop the connection."""
        fault = self._take_fault(request.method, request.path)
        if fault is not None:
            if fault.after_handling:
                self._serve(request)
            if fault.delay:
                time.sleep(fault.delay)
            return None if fault.status == 0 else self._fault_reply(fault, request.path)
        return self._serve(request)

    def _serve(self, request: Request) -> Reply:
        route, groups = None, {}
        for candidate in ROUTES:
            match = candidate.pattern.fullmatch(request.path)
            if match and candidate.method == request.method:
                route, groups = candidate, match.groupdict()
                break
        if route is None:  # unknown path or method: the gateway has no such operation
            return api_error(404, *RESOURCE_NOT_FOUND)
        if route.accept is not None:
            # The gateway routes on the versioned media type: a wrong one finds no operation. A missing
            # Accept is tolerated (the docs only "recommend" it), */* is not.
            accept = request.headers.get("Accept")
            if accept and route.accept not in [part.split(";")[0].strip().lower() for part in accept.split(",")]:
                return api_error(404, *RESOURCE_NOT_FOUND)
            auth = request.headers.get("Authorization")
            if not auth:
                return api_error(401, *HEADER_NOT_FOUND)
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or self.auth.check_access_token(token.strip()) is None:
                return api_error(401, *INVALID_TOKEN)
        return getattr(self, route.handler)(request, **groups)

    # IMS
    def _discovery(self, request: Request) -> Reply:
        return self.auth.discovery()

    def _authorize(self, request: Request) -> Reply:
        return self.auth.authorize(request.query)

    def _token(self, request: Request) -> Reply:
        return self.auth.token(parse_form(request.body), request.headers.get("Authorization"))

    # API
    def _sas_url(self, container: str, permissions: str) -> str:
        url = self.azurite.blob_endpoint + "/" + container + "?" + self._sas(container, permissions)
        return url

    def _sas(self, container: str, permissions: str) -> str:
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas
        from datetime import datetime, timedelta, timezone

        now = datetime.now(timezone.utc)
        token = generate_container_sas(
            account_name=self.azurite.account_name,
            container_name=container,
            account_key=self.azurite.account_key,
            permission=ContainerSasPermissions.from_string(permissions),
            expiry=now + timedelta(seconds=self.sas_lifetime),
            start=now - timedelta(minutes=1),  # tolerate clock skew, as the real service does
        )
        sig = parse_qs(token)["sig"][0]
        encoded = [part[4:] for part in token.split("&") if part.startswith("sig=")][0]
        with self.auth.lock:
            self.auth.secrets.update({sig, encoded})
        return token

    def _get_bucket(self, request: Request, itwin_id: str) -> Reply:
        with self._lock:
            record = self._itwins.get(itwin_id.lower()) if is_guid(itwin_id) else None
        if record is None:
            return api_error(404, *ITWIN_NOT_FOUND)
        if not record.datacenter_supported:
            return api_error(
                400,
                "InvalidRealityModelingRequest",
                "Could not retrieve the bucket.",
                [{"code": "InvalidProperty", "message": "iTwin data center location is not supported."}],
            )
        url = self._sas_url(record.container, record.permissions)
        return Reply.json(200, {"bucket": {"iTwinId": itwin_id}, "_links": {"containerUrl": {"href": url}}})

    def _get_access(self, request: Request, rd_id: str, access: str) -> Reply:
        if not is_guid(rd_id):
            return api_error(422, "InvalidRealityDataRequest", "Invalid RealityData request.", [invalid_value(rd_id, "id")])
        itwin_param = request.query.get("iTwinId", [None])[0]
        if itwin_param is not None and not is_guid(itwin_param):
            return api_error(
                422, "InvalidRealityDataRequest", "Invalid RealityData request.", [invalid_value(itwin_param, "iTwinId")]
            )
        with self._lock:
            record = self._reality_data.get(rd_id.lower())
        if record is None or (itwin_param is not None and itwin_param.lower() != record.itwin_id):
            return api_error(404, *RD_NOT_FOUND)
        write = access == "writeaccess"
        if self._denied(itwin_param or record.itwin_id, "realitydata_manage" if write else "realitydata_use"):
            return api_error(403, *INSUFFICIENT)
        blobs = self._blob_count(record.container)
        with self._lock:
            record.last_accessed = rdm.now_rfc3339()
            record.record(access, blobs)
        url = self._sas_url(record.container, record.write_permissions if write else record.read_permissions)
        return Reply.json(
            200,
            {"type": "AzureBlobSasUrl", "access": "Write" if write else "Read", "_links": {"containerUrl": {"href": url}}},
        )

    def _move(self, request: Request, rd_id: str) -> Reply:
        def invalid(detail: dict) -> Reply:
            return api_error(422, "InvalidRealityDataRequest", "Invalid RealityData request.", [detail])

        try:
            body = json.loads(request.body or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return invalid({"code": "InvalidRequestBody", "message": "Failed to parse request body."})
        if "iTwinId" not in body:
            return invalid({"code": "MissingRequiredProperty", "message": "Required property is missing.", "target": "iTwinId"})
        dest = body["iTwinId"]
        if not isinstance(dest, str) or not is_guid(dest):
            return invalid(invalid_value(dest, "iTwinId"))
        dest = dest.lower()
        with self._lock:
            record = self._reality_data.get(rd_id.lower()) if is_guid(rd_id) else None
            if record is None:
                return api_error(404, *RD_NOT_FOUND)
            target = self._itwins.get(dest)
            if target is None:
                return api_error(404, *ITWIN_NOT_FOUND)
            source = self._itwins[record.itwin_id]
            if record.rd_id in self._deny_move or source.organization != target.organization:
                return api_error(403, *INSUFFICIENT)
            if record.itwin_id == dest:
                return api_error(409, "AlreadyExists", "Reality data is already within the given iTwin.")
            if source.datacenter != target.datacenter:
                return invalid({
                    "code": "InvalidValue",
                    "message": "The destination iTwin must be in the same data center location as the reality data.",
                    "target": "iTwinId",
                })
            record.itwin_id = dest
        return Reply(204)

    # Reality Management v1: the reality data themselves
    def _denied(self, itwin_id: str, permission: str) -> bool:
        with self._lock:
            itwin = self._itwins.get(itwin_id.lower())
            return itwin is not None and permission in itwin.denied_permissions

    def _container_bytes(self, container: str) -> tuple[int, int]:
        """(blob count, total bytes) in a reality data's container, read from Azurite."""
        try:
            blobs = list(self.azurite.container_client(container).list_blobs())
        except Exception:  # noqa: BLE001 - deleted meanwhile: nothing there
            return 0, 0
        return len(blobs), sum(b.size or 0 for b in blobs)

    def _blob_count(self, container: str) -> int:
        return self._container_bytes(container)[0]

    def _represent(self, record: RealityDataRecord, *, minimal: bool = False) -> dict:
        size_kb = 0 if minimal else -(-self._container_bytes(record.container)[1] // 1024)  # KB, rounded up
        with self._lock:
            datacenter = self._itwins[record.itwin_id].datacenter if record.itwin_id in self._itwins else ""
            return record.representation(size_kb=size_kb, datacenter=datacenter, minimal=minimal)

    def _owner_of(self, request: Request) -> str:
        token = (request.headers.get("Authorization") or "").partition(" ")[2].strip()
        caller = self.auth.check_access_token(token)
        return caller.sub if caller else ""

    @staticmethod
    def _json_body(request: Request) -> dict | None:
        try:
            body = json.loads(request.body or b"null")
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _find(self, request: Request, rd_id: str) -> tuple[RealityDataRecord | None, Reply | None]:
        """The reality data a path names (and ?iTwinId= must be one of its iTwins), or the error answer."""
        if not is_guid(rd_id):
            return None, api_error(422, *rdm.INVALID, [invalid_value(rd_id, "id")])
        itwin_param = request.query.get("iTwinId", [None])[0]
        if itwin_param is not None and not is_guid(itwin_param):
            return None, api_error(422, *rdm.INVALID, [invalid_value(itwin_param, "iTwinId")])
        with self._lock:
            record = self._reality_data.get(rd_id.lower())
        if record is None or (itwin_param is not None and not record.associated(itwin_param.lower())):
            return None, api_error(404, *RD_NOT_FOUND)
        return record, None

    def _list_reality_data(self, request: Request) -> Reply:
        page, problem = rdm.parse_page(request.query)
        if problem is not None:
            return api_error(422, *rdm.INVALID, [problem])
        if page.itwin_id is not None:
            if not is_guid(page.itwin_id):
                return api_error(422, *rdm.INVALID, [invalid_value(page.itwin_id, "iTwinId")])
            with self._lock:
                known = page.itwin_id.lower() in self._itwins
            if not known:
                return api_error(404, *ITWIN_NOT_FOUND)
            if self._denied(page.itwin_id, "realitydata_use"):
                return api_error(403, *INSUFFICIENT)
        with self._lock:
            found = [r for r in self._reality_data.values() if rdm.matches(r, page)]
        chunk = found[page.offset: page.offset + page.top]
        minimal = not rdm.wants_representation(request.headers.get("Prefer"))
        body: dict[str, Any] = {"realityData": [self._represent(r, minimal=minimal) for r in chunk]}
        if page.offset + page.top < len(found):
            following = rdm.PageRequest(page.itwin_id, page.offset + page.top, page.top, page.search, page.types)
            query = {k: v for k, v in (("iTwinId", page.itwin_id), ("continuationToken", rdm.encode_token(following)))
                     if v}
            body["_links"] = {"next": {"href": f"{self.url}/reality-management/reality-data/?{urlencode(query)}"}}
        return Reply.json(200, body)

    def _create_reality_data(self, request: Request) -> Reply:
        body = self._json_body(request)
        if body is None:
            return api_error(422, *rdm.INVALID, [{"code": "InvalidRequestBody", "message": "Failed to parse request body."}])
        changes, details = rdm.check_fields(body, creating=True)
        itwin_id = body.get("iTwinId")
        if itwin_id is None:
            details.insert(0, {"code": "MissingRequiredProperty", "message": "Required property is missing.",
                               "target": "iTwinId"})
        elif not isinstance(itwin_id, str) or not is_guid(itwin_id):
            details.insert(0, invalid_value(itwin_id, "iTwinId"))
        if details:
            return api_error(422, *rdm.INVALID, details)
        itwin_id = itwin_id.lower()
        with self._lock:
            known = itwin_id in self._itwins
        if not known:
            return api_error(404, *ITWIN_NOT_FOUND)
        if self._denied(itwin_id, "realitydata_create"):
            return api_error(403, *INSUFFICIENT)
        rd_id = str(uuid.uuid4())
        record = RealityDataRecord(rd_id, f"rd-{rd_id}", itwin_id, WRITE_PERMISSIONS, READ_PERMISSIONS,
                                   owner_id=self._owner_of(request))
        for attr, value in changes.items():
            setattr(record, attr, value)
        self.azurite.create_container(record.container)
        with self._lock:
            self._reality_data[rd_id] = record
            record.record("created", 0)
        return Reply.json(201, {"realityData": self._represent(record)},
                          {"Location": f"{self.url}/reality-management/reality-data/{rd_id}"})

    def _get_reality_data(self, request: Request, rd_id: str) -> Reply:
        record, problem = self._find(request, rd_id)
        if problem is not None:
            return problem
        itwin_param = request.query.get("iTwinId", [None])[0]
        if self._denied(itwin_param or record.itwin_id, "realitydata_use"):
            return api_error(403, *INSUFFICIENT)
        return Reply.json(200, {"realityData": self._represent(record)})

    def _update_reality_data(self, request: Request, rd_id: str) -> Reply:
        record, problem = self._find(request, rd_id)
        if problem is not None:
            return problem
        body = self._json_body(request)
        if body is None:
            return api_error(422, *rdm.INVALID, [{"code": "InvalidRequestBody", "message": "Failed to parse request body."}])
        changes, details = rdm.check_fields(body, creating=False)
        if details:
            return api_error(422, *rdm.INVALID, details)
        if self._denied(request.query.get("iTwinId", [None])[0] or record.itwin_id, "realitydata_manage"):
            return api_error(403, *INSUFFICIENT)
        blobs = self._blob_count(record.container)
        with self._lock:
            for attr, value in changes.items():
                setattr(record, attr, value)
            record.modified = rdm.now_rfc3339()
            record.record("updated", blobs)
        return Reply.json(200, {"realityData": self._represent(record)})

    def _delete_reality_data(self, request: Request, rd_id: str) -> Reply:
        record, problem = self._find(request, rd_id)
        if problem is not None:
            return problem
        if self._denied(request.query.get("iTwinId", [None])[0] or record.itwin_id, "realitydata_manage"):
            return api_error(403, *INSUFFICIENT)
        if record.shared_with:
            # Not documented which answer this is ("it must be associated to only one (or zero) iTwin"):
            # a 422 with a target, as the move's same precondition.
            return api_error(422, *rdm.INVALID, [{
                "code": "InvalidValue", "target": "iTwins",
                "message": "The reality data is associated with more than one iTwin: dissociate the others first."}])
        with self._lock:
            self._reality_data.pop(record.rd_id, None)
        try:
            self.azurite.container_client(record.container).delete_container()
        except Exception:  # noqa: BLE001 - already gone: the reality data is deleted all the same
            pass
        return Reply(204)

    # Admin API (not subject to faults, not in the request log)
    def _admin_add_reality_data(self, **kwargs: Any) -> dict:
        rd_id = self.add_reality_data(**kwargs)
        return {"realityDataId": rd_id, "iTwinId": self.reality_data_itwin(rd_id)}

    def _admin(self, method: str, name: str, body: bytes) -> Reply:
        if method == "GET" and name == "requests":
            return Reply.json(200, {"requests": [{"method": m, "path": p, "status": s} for m, p, s in self.requests]})
        if method == "GET" and name == "state":
            return Reply.json(200, self.state())
        actions: dict[str, Callable[..., Any]] = {
            "itwins": lambda **kw: {"iTwinId": self.add_itwin(**kw)},
            "reality-data": self._admin_add_reality_data,
            "share-reality-data": self.share_reality_data,
            "configure-itwin": self.configure_itwin,
            "deny-move": self.deny_move_for,
            "inject": self.inject,
            "expire-tokens": self.expire_tokens,
            "configure": self.configure,
            "reset": self.reset,
            "clients": self.register_client,
            "redirect-uris": self.register_redirect_uri,
        }
        if method != "POST" or name not in actions:
            return api_error(404, "ResourceNotFound", f"No admin operation {method} /_emulator/{name}.")
        try:
            kwargs = json.loads(body) if body.strip() else {}
            if not isinstance(kwargs, dict):
                raise TypeError("the body must be a JSON object of keyword arguments")
            result = actions[name](**kwargs)
        except (TypeError, ValueError, KeyError, re.error) as exc:
            return api_error(400, "InvalidAdminRequest", str(exc))
        return Reply.json(201, result) if result is not None else Reply(204)


def _make_handler(emulator: PlatformEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as clients' connection pools expect
        server_version = "iTwinPlatformEmulator"
        sys_version = ""
        timeout = 60  # idle keep-alive connections end

        def _dispatch(self) -> None:
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            body = self._read_body()
            if path.startswith("/_emulator/"):
                self._send(emulator._admin(self.command, path[len("/_emulator/"):], body))
                return
            request = Request(self.command, path, parse_qs(parts.query, keep_blank_values=True), self.headers, body)
            try:
                reply = emulator.handle(request)
            except Exception as exc:  # noqa: BLE001 - a bug in the emulator: answer like a failing service, say why on stderr
                print(f"emulator: error handling {self.command} {path}: {type(exc).__name__}", file=sys.stderr)
                reply = api_error(500, "InternalServerError", "The emulator failed to handle the request.")
            status = 0 if reply is None else reply.status
            with emulator._lock:
                emulator._requests.append((self.command, path, status))
            if emulator._log:
                # Path only: query strings may carry codes or state, never worth the risk.
                emulator._log(f"{self.command} {path} -> {status or 'dropped'}")
            if reply is None:
                self.close_connection = True
                return
            self._send(reply)

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline().strip():  # trailers
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, reply: Reply) -> None:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.status not in (204, 304):
                self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if reply.body and reply.status not in (204, 304) and self.command != "HEAD":
                self.wfile.write(reply.body)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _dispatch

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # the default log prints the request line with its query string

    return Handler


def main(argv: list[str] | None = None) -> int:
    from .azurite import AzuriteServer

    parser = argparse.ArgumentParser(
        prog="python -m devtools.emulator",
        description="Run the iTwin Platform + IMS emulator against a running Azurite.",
    )
    parser.add_argument("--azurite-port", type=int, required=True, help="port of a running Azurite blob service")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    parser.add_argument("--sas-lifetime", type=float, default=3600, help="seconds a handed-out SAS is valid")
    parser.add_argument("--token-lifetime", type=float, default=3600, help="seconds an access token is valid")
    parser.add_argument("--itwin", action="append", default=[], metavar="GUID", help="register this iTwin")
    parser.add_argument("--reality-data", action="append", default=[], metavar="RD_GUID:ITWIN_GUID",
                        help="register a reality data in an iTwin")
    parser.add_argument("--quiet", action="store_true", help="no request log on stderr")
    args = parser.parse_args(argv)

    azurite = AzuriteServer.attach(args.azurite_port)
    log = None if args.quiet else (lambda line: print(f"emulator: {line}", file=sys.stderr, flush=True))
    emulator = PlatformEmulator(
        azurite, port=args.port, sas_lifetime=args.sas_lifetime, token_lifetime=args.token_lifetime, log=log
    )
    for itwin in args.itwin:
        emulator.add_itwin(itwin)
    for pair in args.reality_data:
        rd, _, itwin = pair.partition(":")
        if itwin and itwin.lower() not in {i["itwin_id"] for i in emulator.state()["itwins"]}:
            emulator.add_itwin(itwin)
        emulator.add_reality_data(rd, itwin or None)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with emulator:
        # Machine-readable, for scripts/demo: these lines include the demo client's secret.
        print(f"ITWIN_API_URL={emulator.url}")
        print(f"ITWIN_IMS_URL={emulator.url}")
        print(f"ITWIN_CLIENT_ID={emulator.client_id}")
        print(f"ITWIN_CLIENT_SECRET={emulator.client_secret}", flush=True)
        print(f"emulator: listening on {emulator.url} (Azurite at {azurite.blob_endpoint})", file=sys.stderr, flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())

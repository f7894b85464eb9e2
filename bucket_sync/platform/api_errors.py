"""Turn an error answer of the iTwin Platform API or IMS into an :class:`ApiError` a user can act on.

The documented body is ``{"error":{"code","message","target"?,"details"?:[...]}}`` (IMS uses the OAuth
shape ``{"error":"invalid_client","error_description":...}``, possibly with the same ``details`` beside it),
but the docs warn that clients must not assume every failure carries it: gateways answer with HTML, plain
text or nothing. Whatever arrives, the message names the status and what the service said (redacted,
truncated), and the hint says what to do next.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from ..errors import ApiError, ExitCode
from ..redact import redact

# Enough of a server's text to recognise it, short enough to stay one readable line.
_SNIPPET_CHARS = 200

AUTH_HINT = (
    "the access token was refused: if you set ITWIN_ACCESS_TOKEN it may have expired; otherwise check "
    "ITWIN_CLIENT_ID/ITWIN_CLIENT_SECRET or run `bucket-sync auth login`"
)
# The API (and IMS) say "UnknownClient" when the app id is not registered, or registered as another type.
UNKNOWN_CLIENT_HINT = (
    "the app (client id) is not registered with Bentley IMS or is of the wrong type: register it in the iTwin "
    "Platform developer portal (https://developer.bentley.com, My Apps), check its type (a Service app for "
    "ITWIN_CLIENT_ID/ITWIN_CLIENT_SECRET client credentials, a Native/Desktop app for `bucket-sync auth login`) "
    "and that it has the itwin-platform scope"
)
_UNKNOWN_CLIENT = "unknownclient"
_FORBIDDEN_HINT = "your account or app lacks permission for this on the iTwin: ask an iTwin administrator for access"
_ITWIN_NOT_FOUND_HINT = "check the iTwin id and that your account/app is a member of the iTwin"
_REALITY_DATA_NOT_FOUND_HINT = (
    "check the reality data id (and --itwin when the reality data is shared from another iTwin), and that your "
    "account/app has access to its iTwin"
)
_NO_ENDPOINT_HINT = (
    "the API has no such endpoint: check --api-url (ITWIN_API_URL); the path or Accept version may have changed"
)
_DATA_CENTER_HINT = "this iTwin's data center location does not offer it; use an iTwin in a supported region"
_BAD_REQUEST_HINT = "check the ids given and --api-url; the API is a preview and may have changed"
_INVALID_HINT = "correct the values named above"
_THROTTLED_HINT = "the API is rate limiting requests (500 per minute on the Community tier): try again later"
_SERVER_HINT = "the service is failing or unavailable: try again later"


@dataclass(frozen=True)
class ErrorBody:
    """What the service said, as far as it could be read."""

    code: str | None = None
    message: str | None = None
    target: str | None = None
    details: tuple[tuple[str | None, str | None, str | None], ...] = ()
    snippet: str | None = None  # the server's own text when it was not the documented JSON

    def texts(self) -> str:
        parts = [self.message or "", *(m or "" for _, m, _ in self.details)]
        return " ".join(parts).lower()


def parse_error_body(resp: httpx.Response) -> ErrorBody:
    try:
        text = resp.text
    except Exception:  # noqa: BLE001 - undecodable bytes: nothing worth showing
        return ErrorBody()
    try:
        data = json.loads(text) if text.strip() else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            body = ErrorBody(_str(err.get("code")), _str(err.get("message")), _str(err.get("target")),
                             _details(err.get("details")))
        elif isinstance(err, str):  # OAuth (IMS), with the API's details beside it when there are some
            body = ErrorBody(code=_str(err), message=_str(data.get("error_description")),
                             details=_details(data.get("details")))
        else:  # e.g. an API gateway's {"statusCode":401,"message":"..."}
            body = ErrorBody(message=_str(data.get("message")))
        if body.code or body.message or body.details:
            return body
    return ErrorBody(snippet=snippet(text, resp.headers.get("content-type", "")))


def _details(items: object) -> tuple[tuple[str | None, str | None, str | None], ...]:
    if not isinstance(items, list):
        return ()
    return tuple(
        (_str(d.get("code")), _str(d.get("message")), _str(d.get("target"))) for d in items if isinstance(d, dict)
    )


def is_unknown_client(code: str | None, details: tuple[tuple[str | None, str | None, str | None], ...]) -> bool:
    """Whether an answer says the client (app) id is unknown: ``UnknownClient`` as its code or a detail's."""
    return any((c or "").lower() == _UNKNOWN_CLIENT for c in (code, *(d[0] for d in details)))


def invite_note(app_email: str | None) -> str:
    """The reminder a service app needs on a 403/404: it must be a member of the iTwin (empty for a user)."""
    return f"; a service app must be invited to the iTwin as {app_email}" if app_email else ""


def snippet(text: str, content_type: str = "") -> str | None:
    """A short, single-line, redacted rendering of a server's free text (the <title> of an HTML page)."""
    if "html" in content_type.lower() or text.lstrip()[:1] == "<":
        title = re.search(r"(?is)<title[^>]*>(.*?)</title>", text)
        text = title.group(1) if title else re.sub(r"(?s)<[^>]*>", " ", text)
    text = " ".join(text.split())
    if not text:
        return None
    text = redact(text)
    return text if len(text) <= _SNIPPET_CHARS else text[: _SNIPPET_CHARS - 1] + "…"


def error_from_response(
    resp: httpx.Response,
    *,
    what: str,
    app_email: str | None = None,
    hints: Mapping[int, str] | None = None,
    note: str | None = None,
    retried_after: tuple[int, ...] = (),
) -> ApiError:
    """Map a non-2xx answer to an ApiError with the right exit code and a hint.

    ``what`` completes "could not ...", e.g. "get the Reality Modeling bucket of iTwin <id>". ``app_email``
    is the service app's address when client credentials are in use: a 403/404 then reminds that it must
    be invited to the iTwin. ``hints`` overrides the hint per status for one call (e.g. move's 403).
    ``retried_after``: the statuses of earlier attempts of this request that were retried.
    """
    status = resp.status_code
    body = parse_error_body(resp)
    exit_code, retryable, hint, lead = _classify(status, body, app_email)
    if hints and status in hints:
        hint = hints[status]
    said = f"HTTP {status}"
    if body.code:
        said += f" {body.code}"
    elif resp.reason_phrase:
        said += f" {resp.reason_phrase}"
    if body.message:
        said += f": {redact(body.message)}"
    if body.target:
        said += f" (target: {redact(body.target)})"
    for d_code, d_message, d_target in body.details:
        item = redact(d_message or d_code or "")
        said += f"; {redact(d_target)}: {item}" if d_target else f"; {item}"
    if body.snippet:
        said += f": the server said {body.snippet!r}"
    elif not (body.code or body.message or body.details):
        said += " with no error details"
    message = f"could not {what}: {lead}{said}"
    if note:
        message += f" ({note})"
    return ApiError(
        message,
        status=status,
        code=body.code,
        target=body.target,
        details=body.details,
        exit_code=exit_code,
        retryable=retryable,
        hint=hint,
        retried_after=retried_after,
    )


def _classify(status: int, body: ErrorBody, app_email: str | None) -> tuple[ExitCode, bool, str | None, str]:
    """(exit code, retryable, hint, lead-in) for a status and what the body said."""
    invite = invite_note(app_email)
    if status == 400:
        if "data center" in body.texts() or "datacenter" in body.texts():
            return ExitCode.NOT_FOUND, False, _DATA_CENTER_HINT, "not available: "
        return ExitCode.USAGE, False, _BAD_REQUEST_HINT, ""
    if status == 401:
        if is_unknown_client(body.code, body.details):
            return ExitCode.AUTH, False, UNKNOWN_CLIENT_HINT, ""
        return ExitCode.AUTH, False, AUTH_HINT, ""
    if status == 403:
        return ExitCode.AUTH, False, _FORBIDDEN_HINT + invite, ""
    if status == 404:
        code = (body.code or "").lower()
        if code == "itwinnotfound":
            return ExitCode.NOT_FOUND, False, _ITWIN_NOT_FOUND_HINT + invite, ""
        if code == "realitydatanotfound":
            return ExitCode.NOT_FOUND, False, _REALITY_DATA_NOT_FOUND_HINT + invite, ""
        if code == "resourcenotfound":
            return ExitCode.NOT_FOUND, False, _NO_ENDPOINT_HINT, ""
        # Without the documented body we cannot tell a wrong id from a wrong URL: name both.
        return ExitCode.NOT_FOUND, False, "check the id, your access to the iTwin, and --api-url (ITWIN_API_URL)" + invite, ""
    if status == 409:
        return ExitCode.FAILED, False, None, ""
    if status == 422:
        return ExitCode.USAGE, False, _INVALID_HINT, ""
    if status == 429:
        return ExitCode.FAILED, True, _THROTTLED_HINT, ""
    if status >= 500:
        return ExitCode.FAILED, True, _SERVER_HINT, ""
    if 300 <= status < 400:
        return ExitCode.FAILED, False, "unexpected redirect: check --api-url / --ims-url", ""
    return ExitCode.FAILED, False, None, ""


def _str(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None

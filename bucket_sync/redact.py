"""Keep secrets out of every line bucket-sync prints or logs.

Two layers: a pattern that blanks any SAS signature (``sig=...``) and bearer/token-looking fields wherever
they appear, and a registry of the exact secret values this process has seen (access tokens, refresh
tokens, client secrets, SAS signatures), so that even a secret echoed in an unexpected shape is caught.
The logging filter applies both to every record, including exception text.
"""

from __future__ import annotations

import logging
import re
import threading

REDACTED = "REDACTED"

_PATTERNS = (
    # SAS signature in a URL or query string, encoded or not ("sig=..." in a hint is a placeholder).
    re.compile(r"(?i)(\bsig=)(?!\.\.\.)[^&\s\"'<>]+"),
    re.compile(r"(?i)(\bsig%3D)[^&\s\"'<>]+"),
    # Authorization headers and OAuth fields.
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9\-._~+/=]+"),
    re.compile(r"(?i)(\"?(?:access_token|refresh_token|client_secret|id_token|code_verifier)\"?\s*[:=]\s*\"?)[^\"&\s,}]+"),
)

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember an exact secret value so that :func:`redact` blanks it wherever it shows up."""
    if value and len(value) >= 6:
        with _lock:
            _secrets.add(value)


def redact(text: object) -> str:
    s = str(text)
    for pattern in _PATTERNS:
        s = pattern.sub(lambda m: m.group(1) + REDACTED, s)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in s:
            s = s.replace(secret, REDACTED)
    return s


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (args merged, exception text included) with secrets blanked."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed log call must not hide the line
            message = str(record.msg)
        if record.exc_info:
            formatter = logging.Formatter()
            message = message + "\n" + formatter.formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        record.msg = redact(message)
        record.args = None
        return True

"""What a JWT access token says about itself (who, until when), read without verifying it: for display and
for renewing before expiry, never to decide access (the API does that)."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Any


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT; {} when ``token`` is not one."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def token_expiry(token: str) -> datetime | None:
    """The ``exp`` claim as a UTC datetime; None when absent or unreadable."""
    try:
        return datetime.fromtimestamp(float(token_claims(token)["exp"]), timezone.utc)
    except (KeyError, ValueError, TypeError, OverflowError, OSError):
        return None

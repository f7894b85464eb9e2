"""The iTwin Platform side of bucket-sync: credentials, the API client, and SAS sources for targets.

It knows nothing of blobs beyond the SAS container URL the API hands out, and nothing of click or tqdm.

Names are imported on first use (PEP 562): importing this package, or a light module in it such as
``sas_cache`` or ``credentials``, must not import httpx, which only a run that talks to the API needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# Public name -> the module that defines it.
_EXPORTS = {
    "ACCEPT_V1": "api",
    "ACCEPT_V2": "api",
    "PlatformApi": "api",
    "error_from_response": "api_errors",
    "BearerAuth": "bearer",
    "CachedLoginLoader": "credentials",
    "ClientCredentials": "credentials",
    "RenewingTokenProvider": "credentials",
    "StaticToken": "credentials",
    "TokenProvider": "credentials",
    "choose_credentials": "credentials",
    "TokenGrant": "ims",
    "request_token": "ims",
    "USER_AGENT": "http",
    "ApiTransport": "http",
    "make_client": "http",
    "parse_retry_after": "http",
    "request_with_retries": "http",
    "require_secure_url": "urls",
    "RealityData": "reality_data",
    "RealityDataClient": "reality_data",
    "RealityDataFields": "reality_data",
    "ApiSasSource": "resolver",
    "StaticSasSource": "resolver",
    "resolve_sas_source": "resolver",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # next time without this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
    from .api import ACCEPT_V1, ACCEPT_V2, PlatformApi
    from .api_errors import error_from_response
    from .bearer import BearerAuth
    from .credentials import (
        CachedLoginLoader,
        ClientCredentials,
        RenewingTokenProvider,
        StaticToken,
        TokenProvider,
        choose_credentials,
    )
    from .http import USER_AGENT, ApiTransport, make_client, parse_retry_after, request_with_retries
    from .ims import TokenGrant, request_token
    from .reality_data import RealityData, RealityDataClient, RealityDataFields
    from .resolver import ApiSasSource, StaticSasSource, resolve_sas_source
    from .urls import require_secure_url

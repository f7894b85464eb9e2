"""The iTwin Platform side of bucket-sync: credentials, the API client, and SAS sources for targets.

It knows nothing of blobs beyond the SAS container URL the API hands out, and nothing of click or tqdm.
"""

from .api import ACCEPT_V1, ACCEPT_V2, PlatformApi
from .api_errors import error_from_response
from .credentials import (
    BearerAuth,
    CachedLoginLoader,
    ClientCredentials,
    RenewingTokenProvider,
    StaticToken,
    TokenProvider,
    choose_credentials,
)
from .ims import TokenGrant, request_token
from .http import USER_AGENT, ApiTransport, make_client, parse_retry_after, request_with_retries, require_secure_url
from .resolver import ApiSasSource, StaticSasSource, resolve_sas_source

__all__ = [
    "ACCEPT_V1",
    "ACCEPT_V2",
    "ApiSasSource",
    "ApiTransport",
    "BearerAuth",
    "CachedLoginLoader",
    "ClientCredentials",
    "PlatformApi",
    "RenewingTokenProvider",
    "StaticSasSource",
    "StaticToken",
    "TokenGrant",
    "TokenProvider",
    "USER_AGENT",
    "choose_credentials",
    "error_from_response",
    "make_client",
    "parse_retry_after",
    "request_token",
    "request_with_retries",
    "require_secure_url",
    "resolve_sas_source",
]

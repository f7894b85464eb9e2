"""The run's environment: options shared by every command, and the remote resolved from them."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Callable, Mapping

from ..config import Config
from ..platform import PlatformApi, TokenProvider, choose_credentials, resolve_sas_source
from ..redact import RedactingFilter
from ..sas import SasSource
from ..targets import Remote

DEFAULT_API_URL = "https://api.bentley.com"
DEFAULT_IMS_URL = "https://ims.bentley.com"


@dataclass(frozen=True)
class Globals:
    api_url: str = DEFAULT_API_URL
    ims_url: str = DEFAULT_IMS_URL
    config: Config = field(default_factory=lambda: Config(path=None))
    json: bool = False
    quiet: bool = False
    verbose: int = 0
    max_retry_wait: float = 300.0
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    # Hook for `auth login`'s cached session; set by the CLI so the platform layer stays unaware of files.
    cached_login_loader: Callable[[], TokenProvider | None] | None = None

    def credentials(self) -> TokenProvider:
        auth = {k.replace("-", "_"): v for k, v in self.config.auth.items()}
        return choose_credentials(self.env, auth, self.ims_url, cached_login_loader=self.cached_login_loader)

    def api(self) -> PlatformApi:
        return PlatformApi(self.api_url, self.credentials(), max_wait_s=self.max_retry_wait)

    def sas_source(self, target: Remote, *, write: bool) -> SasSource:
        return resolve_sas_source(target, write=write, api_factory=self.api)


def setup_logging(verbose: int, quiet: bool) -> None:
    """Logs go to stderr, always through the redacting filter (azure's loggers included)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s" if verbose > 1 else "%(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    level = logging.ERROR if quiet else logging.WARNING
    if verbose == 1:
        level = logging.INFO
    elif verbose >= 2:
        level = logging.DEBUG
    logging.getLogger("bucket_sync").setLevel(level)
    # The SDKs are chatty; their request logs only at -vvv (and still redacted).
    for noisy in ("azure", "httpx", "httpcore", "urllib3", "watchdog"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose >= 3 else logging.WARNING)
    # azure-core warns "Unable to stream download." for a connection dropped mid-response, which our
    # retry policy then retries: a bare line with no file name would only alarm. The outcome is reported.
    logging.getLogger("azure.core.pipeline.transport").setLevel(logging.DEBUG if verbose >= 3 else logging.ERROR)
    handler.setLevel(logging.DEBUG)

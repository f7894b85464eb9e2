"""The run's environment: options shared by every command, and the remote resolved from them.

The platform package is imported inside the methods that need it, so that a run whose SAS comes from the
cache never imports the API client (nor httpx): cron runs every few minutes notice every 0.1 s.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping

from ..config import Config
from ..errors import ConfigError
from ..redact import RedactingFilter
from ..sas import SasSource
from ..storage.container import ContainerRef
from ..targets import Remote, access_labels

if TYPE_CHECKING:
    from ..platform.api import PlatformApi
    from ..platform.credentials import TokenProvider
    from ..platform.sas_cache import SasCache

DEFAULT_API_URL = "https://api.bentley.com"
DEFAULT_IMS_URL = "https://ims.bentley.com"
# Set (to 1, true, yes or on) to neither read nor write the SAS cache; `[auth] cache-sas = false` does the same.
NO_SAS_CACHE_ENV = "BUCKET_SYNC_NO_SAS_CACHE"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class Globals:
    api_url: str = DEFAULT_API_URL
    ims_url: str = DEFAULT_IMS_URL
    config: Config = field(default_factory=lambda: Config(path=None))
    json: bool = False
    quiet: bool = False
    verbose: int = 0
    max_retry_wait: float = 300.0
    log_file: str | None = None
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    # Hook for `auth login`'s cached session; set by the CLI so the platform layer stays unaware of files.
    cached_login_loader: Callable[[], TokenProvider | None] | None = None

    def credentials(self) -> TokenProvider:
        from ..platform.credentials import choose_credentials

        auth = {k.replace("-", "_"): v for k, v in self.config.auth.items()}
        return choose_credentials(self.env, auth, self.ims_url, cached_login_loader=self.cached_login_loader)

    def api(self, tokens: TokenProvider | None = None) -> PlatformApi:
        from ..platform.api import PlatformApi

        return PlatformApi(self.api_url, tokens or self.credentials(), max_wait_s=self.max_retry_wait)

    def sas_cache_enabled(self) -> bool:
        """Off with ``BUCKET_SYNC_NO_SAS_CACHE=1`` or ``[auth] cache-sas = false``; ConfigError for a value
        that is neither yes nor no (a typo must not silently keep the cache on)."""
        raw = (self.env.get(NO_SAS_CACHE_ENV) or "").strip().lower()
        if raw in _TRUE:
            return False
        if raw not in _FALSE:
            raise ConfigError(f"{NO_SAS_CACHE_ENV}={raw!r} is not understood",
                              hint=f"set {NO_SAS_CACHE_ENV}=1 to turn the SAS cache off, or unset it")
        setting = self.config.auth.get("cache-sas", True)
        if not isinstance(setting, bool):
            raise ConfigError(f"{self.config.path}: [auth] cache-sas must be true or false, not {setting!r}")
        return setting

    def sas_source(self, target: Remote, *, write: bool) -> SasSource:
        return self.sas_sources(target, write=write)[0]

    def container(self, target: Remote, *, write: bool) -> ContainerRef:
        """The target's container, ready to open: a run that writes to a reality data reads through its
        read access (resolver.resolve_sas_sources); refusals name the SAS (targets.access_labels)."""
        source, reads = self.sas_sources(target, write=write)
        origin, limits = access_labels(target)
        return ContainerRef(source, reads, origin, limits)

    def sas_sources(self, target: Remote, *, write: bool) -> tuple[SasSource, SasSource | None]:
        """(source, reads) for a Storage (see resolver.resolve_sas_sources)."""
        from ..platform.resolver import resolve_sas_sources

        tokens: list[TokenProvider] = []  # chosen once, by whichever factory the resolver calls first

        def credentials() -> TokenProvider:
            if not tokens:
                tokens.append(self.credentials())
            return tokens[0]

        def cache() -> SasCache | None:
            # Called at once for API targets: credential and --api-url mistakes surface before any work.
            from ..platform.sas_cache import SasCache
            from ..platform.urls import require_secure_url

            api_url = require_secure_url(self.api_url, option="--api-url")
            identity = credentials().cache_identity()
            if identity is None or not self.sas_cache_enabled():
                return None
            return SasCache(api_url, identity)

        return resolve_sas_sources(target, write=write, api_factory=lambda: self.api(credentials()),
                                   cache_factory=cache)


def setup_logging(verbose: int, quiet: bool, log_file: str | None = None, *, rotating: bool = False) -> None:
    """Logs go to stderr, always through the redacting filter (azure's loggers included); with
    ``log_file`` also there, at INFO at least (run_log.py)."""
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
    logger_level = level
    if log_file:
        from .run_log import file_handler

        to_file = file_handler(log_file, rotating=rotating)
        to_file.setLevel(min(level, logging.INFO))
        root.addHandler(to_file)
        logger_level = min(level, logging.INFO)
    logging.getLogger("bucket_sync").setLevel(logger_level)
    # The SDKs are chatty; their request logs only at -vvv (and still redacted).
    for noisy in ("azure", "httpx", "httpcore", "urllib3", "watchdog"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose >= 3 else logging.WARNING)
    # azure-core warns "Unable to stream download." for a connection dropped mid-response, which our
    # retry policy then retries: a bare line with no file name would only alarm. The outcome is reported.
    logging.getLogger("azure.core.pipeline.transport").setLevel(logging.DEBUG if verbose >= 3 else logging.ERROR)
    handler.setLevel(level if verbose < 3 else logging.DEBUG)

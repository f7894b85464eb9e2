"""bucket-sync: keep local folders in sync with Bentley iTwin Platform storage.

The Python API (bucket_sync/api.py): ``upload``, ``download``, ``mirror``, ``watch`` and ``check``, each
returning a typed summary; errors are the classes of ``bucket_sync.errors``. Loaded on first use, so that
the CLI (which imports this package for its version) pays nothing for it.
"""

from typing import Any

__version__ = "0.1.0"

__all__ = ["upload", "download", "mirror", "watch", "check", "Summary", "CheckReport", "__version__"]


def __getattr__(name: str) -> Any:
    if name in __all__ and name != "__version__":
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'bucket_sync' has no attribute {name!r}")

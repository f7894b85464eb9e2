"""The floor plan, checked: which package may import what (read from the source, not from a run)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "bucket_sync"
NETWORK_LIBRARIES = {"azure", "httpx", "requests", "urllib3", "http", "socket", "ssl"}


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved against its package)."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[:len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.add(module)
            if not node.module:
                found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def modules_of(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).glob("*.py"))


@pytest.mark.parametrize("path", modules_of("sync"), ids=lambda p: p.name)
def test_the_sync_core_imports_no_azure_sdk_and_no_http_library(path: Path) -> None:
    bad = {m for m in imported_modules(path) if m.split(".")[0] in NETWORK_LIBRARIES}
    assert not bad, f"{path.name} imports {sorted(bad)}: that belongs in bucket_sync/storage/"


@pytest.mark.parametrize("path", modules_of("sync"), ids=lambda p: p.name)
def test_the_sync_core_imports_nothing_above_it(path: Path) -> None:
    above = ("bucket_sync.storage", "bucket_sync.app", "bucket_sync.cli", "bucket_sync.platform", "bucket_sync.api")
    bad = {m for m in imported_modules(path) if m.startswith(above)}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", modules_of("storage") + modules_of("platform"), ids=lambda p: p.name)
def test_storage_and_platform_know_nothing_of_the_app_or_the_cli(path: Path) -> None:
    above = ("bucket_sync.app", "bucket_sync.cli", "bucket_sync.api")
    bad = {m for m in imported_modules(path) if m.startswith(above)}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_the_checker_sees_relative_imports() -> None:
    """The rule above cannot pass by failing to resolve: engine.py's relative imports resolve into the package."""
    found = imported_modules(PACKAGE / "sync" / "engine.py")
    assert "bucket_sync.sync.model" in found and "bucket_sync.sync.remote" in found
    assert "bucket_sync.storage.container" in imported_modules(PACKAGE / "app" / "sync_run.py")


@pytest.mark.parametrize("path", modules_of("cli"), ids=lambda p: p.name)
def test_the_cli_builds_settings_without_importing_the_engine(path: Path) -> None:
    """The CLI parses options into sync/settings.py's TransferSettings; running plans is the app's business."""
    assert "bucket_sync.sync.engine" not in imported_modules(path), f"{path.name} imports bucket_sync.sync.engine"


@pytest.mark.parametrize("path", [p for p in sorted((PACKAGE / "app").glob("watch*.py")) if p.name != "watch_credentials.py"],
                         ids=lambda p: p.name)
def test_the_watcher_knows_nothing_of_the_platform_api(path: Path) -> None:
    """Whether a SAS can be renewed is the SAS source's to say (bucket_sync/sas.py); only the credential
    observer for --metrics names the platform's token type."""
    bad = {m for m in imported_modules(path) if m.startswith("bucket_sync.platform")}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", modules_of("platform"), ids=lambda p: p.name)
def test_the_platform_client_knows_nothing_of_blobs(path: Path) -> None:
    """The iTwin API and IMS side hands out SAS URLs; the core and the Azure side are not its business."""
    bad = {m for m in imported_modules(path) if m.startswith(("bucket_sync.sync", "bucket_sync.storage"))}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", [p for p in sorted(PACKAGE.glob("*.py")) if p.name not in ("api.py", "__main__.py", "__init__.py")],
                         ids=lambda p: p.name)
def test_the_shared_top_level_modules_import_no_layer(path: Path) -> None:
    """errors, retry, sas, targets, config, ...: every layer may import them, so they import none."""
    layers = ("bucket_sync.sync", "bucket_sync.storage", "bucket_sync.platform", "bucket_sync.app", "bucket_sync.cli")
    bad = {m for m in imported_modules(path) if m.startswith(layers)}
    assert not bad, f"{path.name} imports {sorted(bad)}"

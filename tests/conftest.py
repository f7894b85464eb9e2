"""Shared fixtures: Azurite, the iTwin Platform/IMS emulator, and a runner for the real CLI.

- ``azurite`` (session): an in-memory AzuriteServer; ``azurite.container_client(name)`` checks blobs
  directly; ``azurite.container_sas_url(name, permission, lifetime_s)`` makes a SAS URL.
- ``azurite_factory`` (function): ``azurite_factory(location=None) -> AzuriteServer``, a private, started
  instance persisted on disk (under tmp_path unless given), so ``restart()`` keeps blobs.
- ``emulator`` (session): PlatformEmulator on top of ``azurite``; reset after every test that used it.
- ``new_itwin`` (function): a fresh registered iTwin GUID (container ``bucket-<id>`` exists) whose bucket
  SAS is the documented ``sp=rw`` (no list, no delete).
- ``listing_itwin`` (function): the same, for a test that needs a bucket SAS that can also list and delete
  (``racwdl``: real buckets may grant it; the documentation shows only ``rw``).
- ``new_reality_data`` (function): a fresh reality data GUID in a fresh iTwin (container ``rd-<id>``).
- ``bucket_container`` (function): ``bucket_container(itwin_id) -> ContainerClient`` (account key).
- ``cli`` (function): ``cli(*args, env=None, input=None, timeout=120, cwd=None, allow_secrets=False)
  -> CliResult(args, returncode, stdout, stderr, json_lines)`` runs the installed ``bucket-sync`` with a
  clean environment pointing at the emulator, and fails the test if the output shows any secret.
- ``make_files`` (function): ``make_files(root, {"a.txt": b"..." | "text" | size_int}) -> root``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devtools.azurite import AzuriteServer
from devtools.emulator import FULL_PERMISSIONS, PlatformEmulator
from tests.support.cli import CliRunner, clean_env


@pytest.fixture(scope="session")
def azurite():
    with AzuriteServer() as server:
        yield server


@pytest.fixture
def azurite_factory(tmp_path):
    started: list[AzuriteServer] = []

    def factory(location: Path | str | None = None) -> AzuriteServer:
        server = AzuriteServer(location=location or tmp_path / f"azurite-{len(started)}")
        started.append(server)
        return server.start()

    yield factory
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def emulator(azurite):
    with PlatformEmulator(azurite) as emu:
        yield emu


@pytest.fixture(autouse=True)
def _reset_emulator(request):
    """Faults, lifetimes and the request log never leak from one test into the next.

    Only for tests that use the emulator: unit tests must not start Azurite.
    """
    yield
    if "emulator" in request.fixturenames:
        request.getfixturevalue("emulator").reset()


@pytest.fixture
def new_itwin(emulator) -> str:
    return emulator.add_itwin()


@pytest.fixture
def listing_itwin(emulator) -> str:
    return emulator.add_itwin(permissions=FULL_PERMISSIONS)


@pytest.fixture
def new_reality_data(emulator) -> str:
    return emulator.add_reality_data()


@pytest.fixture
def bucket_container(azurite):
    def container(itwin_id: str):
        return azurite.container_client(f"bucket-{itwin_id.lower()}")

    return container


@pytest.fixture
def cli(emulator, azurite, tmp_path) -> CliRunner:
    home = tmp_path / "home"
    for sub in (".config", ".local/state", ".cache"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    env = clean_env(
        home,
        {
            "ITWIN_API_URL": emulator.url,
            "ITWIN_IMS_URL": emulator.url,
            "ITWIN_CLIENT_ID": emulator.client_id,
            "ITWIN_CLIENT_SECRET": emulator.client_secret,
        },
    )
    return CliRunner(home, env, lambda: emulator.issued_secrets() | {azurite.account_key})


@pytest.fixture
def make_files():
    def make(root: Path | str, files: dict[str, bytes | str | int]) -> Path:
        root = Path(root)
        for rel, content in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, int):
                content = os.urandom(content)
            elif isinstance(content, str):
                content = content.encode()
            path.write_bytes(content)
        return root

    return make

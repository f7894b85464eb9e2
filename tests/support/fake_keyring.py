"""Keyring backends for tests, chosen with PYTHON_KEYRING_BACKEND (keyring's own switch), so the real
command runs its keychain path here: ``FileKeyring`` keeps entries in the JSON file named by
``FAKE_KEYRING_FILE`` (shared by the processes of one test); ``BrokenKeyring`` fails every call, as a
locked or unreachable keychain does."""

from __future__ import annotations

import json
import os

from keyring.backend import KeyringBackend
from keyring.errors import KeyringError, PasswordDeleteError


class FileKeyring(KeyringBackend):
    priority = 10

    def _load(self) -> dict:
        try:
            with open(os.environ["FAKE_KEYRING_FILE"], encoding="utf-8") as fh:
                return json.load(fh)
        except FileNotFoundError:
            return {}

    def _save(self, data: dict) -> None:
        with open(os.environ["FAKE_KEYRING_FILE"], "w", encoding="utf-8") as fh:
            json.dump(data, fh)

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service}/{username}"] = password
        self._save(data)

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        if data.pop(f"{service}/{username}", None) is None:
            raise PasswordDeleteError("not found")
        self._save(data)


class BrokenKeyring(KeyringBackend):
    priority = 10

    def get_password(self, service: str, username: str) -> str | None:
        raise KeyringError("the keychain is locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise KeyringError("the keychain is locked")

    def delete_password(self, service: str, username: str) -> None:
        raise KeyringError("the keychain is locked")

"""Fixtures of the portability suite (README.md, "Windows, macOS and Linux")."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def sas_url(azurite, cli):
    """``(url, container_client)``: a fresh Azurite container and a full-permission ("racwdl") SAS URL for it,
    whose signature the ``cli`` fixture also checks the output for."""
    name = f"portable-{uuid.uuid4().hex[:12]}"
    azurite.create_container(name)
    url = azurite.container_sas_url(name, "racwdl", 3600)
    cli.add_secret(url.rsplit("sig=", 1)[1].split("&")[0])
    return url, azurite.container_client(name)

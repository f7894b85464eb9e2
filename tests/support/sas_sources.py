"""A SAS source for tests of the plain transport against a loopback server: SAS "one" first, SAS "two" after
the first refresh (``refreshes`` counts them), so a test sees which token each request carried."""

from __future__ import annotations

from bucket_sync.sas import ContainerSas, SasSource


class RenewingSource(SasSource):
    def __init__(self, base: str) -> None:
        self.base = base
        self.sas = ContainerSas.from_url(f"{base}?sv=1&sig=one")
        self.refreshes = 0

    def current(self) -> ContainerSas:
        return self.sas

    def refresh(self, stale: ContainerSas) -> ContainerSas:
        self.refreshes += 1
        self.sas = ContainerSas.from_url(f"{self.base}?sv=1&sig=two")
        return self.sas

"""The gateway's long-lived state: settings and one pooled upstream client per provider."""

from __future__ import annotations

from vdm.config.settings import ProviderConfig, Settings
from vdm.protocol.codec import DEGRADATIONS, ReasoningCache
from vdm.server.catalog import ModelCatalog
from vdm.upstream.backends import client_for
from vdm.upstream.client import UpstreamClient
from vdm.upstream.keys import Cooldown
from vdm.usage.prices import PriceTable, user_prices
from vdm.usage.recorder import UsageRecorder


class Gateway:
    """Shared by every request of one server; created at startup, closed at shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: dict[str, UpstreamClient] = {}
        self.catalog = ModelCatalog(settings, self.client)
        prices, self.price_problems = user_prices(settings.prices)
        self.prices = PriceTable.with_user(prices)
        #: Priced as each request is recorded (its prompt size and time can change the rate).
        self.usage = UsageRecorder(self.prices)
        #: Reasoning text by tool call id, for clients that drop thinking blocks.
        self.reasoning = ReasoningCache()
        #: Provider name -> the lasting degradations it needed (codec.DEGRADATIONS), so its
        #: later requests go without what it refused straight away.
        self.degraded: dict[str, set[str]] = {}

    def degrade(self, provider: str, degradation: str) -> None:
        """Remember a lasting degradation of `provider` (until the server restarts)."""
        if DEGRADATIONS.get(degradation):
            self.degraded.setdefault(provider, set()).add(degradation)

    def client(self, provider: ProviderConfig) -> UpstreamClient:
        client = self._clients.get(provider.name)
        if client is None:
            client = self._clients[provider.name] = client_for(provider)
        return client

    def cooling(self) -> dict[str, list[Cooldown]]:
        """Provider name -> its keys' running cooldowns (masked), for the providers that
        have been called since the server started (the others have none)."""
        return {
            name: found
            for name, client in self._clients.items()
            if (found := client.keys.cooling())
        }

    async def aclose(self) -> None:
        await self.catalog.aclose()
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

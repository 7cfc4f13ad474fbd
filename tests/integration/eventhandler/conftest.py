"""An event handler running in the test's event loop, on the test's own nats-server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.eventhandler.support import InProcessEventHandler, settings_for
from tests.support.processes import NatsServer


@pytest.fixture
async def eventhandler(nats_server: NatsServer) -> AsyncIterator[InProcessEventHandler]:
    async with InProcessEventHandler(settings_for(nats_server.url)) as handler:
        yield handler

"""What a resolver knows about the request it serves."""
from __future__ import annotations

from typing import Optional

from .store import Store


class RequestContext:
    """Handed to every resolver as `info.context`.

    Args:
        store: the emulator's tables
        tenant_id: the X-PREFECT-TENANT-ID header a cloud client sends, if any
        core_version: the X-PREFECT-CORE-VERSION header (stored on agents)
        agent_id: the X-PREFECT-AGENT-ID header an agent sends once registered
    """

    def __init__(self, store: Store, tenant_id: Optional[str] = None, core_version: Optional[str] = None,
                 agent_id: Optional[str] = None) -> None:
        self.store = store
        self.agent_id = agent_id
        self.tenant_id = tenant_id
        self.core_version = core_version

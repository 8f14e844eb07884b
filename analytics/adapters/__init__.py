"""One adapter per input format; each maps its format onto the data contract (analytics.schema).

The registry below is the single list of formats ``cli.py ingest --format`` accepts.
"""

from __future__ import annotations

from analytics.adapters.amazon_json import AmazonJsonAdapter
from analytics.adapters.amazon_seq import AmazonSeqAdapter
from analytics.adapters.base import Adapter, Staged, Unit
from analytics.adapters.generic import GenericAdapter
from analytics.adapters.online_retail import OnlineRetailAdapter
from analytics.adapters.rees46 import Rees46Adapter
from analytics.adapters.taobao import TaobaoAdapter
from errors import RecsightError

__all__ = ["ADAPTERS", "FORMATS", "get_adapter", "Adapter", "Staged", "Unit"]

ADAPTERS: dict[str, Adapter] = {
    adapter.fmt: adapter
    for adapter in (GenericAdapter(), OnlineRetailAdapter(), Rees46Adapter(), AmazonSeqAdapter(), AmazonJsonAdapter(),
                    TaobaoAdapter())
}
FORMATS: tuple[str, ...] = tuple(ADAPTERS)


def get_adapter(fmt: str) -> Adapter:
    """The adapter for ``fmt``, or a clear error listing the formats."""
    try:
        return ADAPTERS[fmt]
    except KeyError:
        raise RecsightError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}") from None

from __future__ import annotations

from pathlib import Path

import pytest

from service.engine import forget_all
from tests.faults.support import Shop, build_shop


@pytest.fixture(scope="session")
def base_shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    """The trained shop every fault test copies (never modified itself)."""
    return build_shop(tmp_path_factory.mktemp("fault-shop"))


@pytest.fixture
def shop(base_shop: Shop, tmp_path: Path) -> Shop:
    """This test's own copy of the trained shop; loaded recommenders are dropped afterwards."""
    copy = base_shop.copy_to(tmp_path / "shop")
    yield copy
    forget_all()

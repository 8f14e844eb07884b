"""The fault tests' shop: a copy of the session's trained shop (tests/shop.py) per test.

Every test gets its own copy of the database and models folder to break; the synthetic export
the database was built from (``first``) and a later one not yet ingested (``second``: other
customers' events, more customers) are shared and never changed.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from settings import Settings
from tests.conftest import TEST_SECRET

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Shop:
    """A shop database, its models folder and the synthetic export folders it was built from."""

    folder: Path
    db: Path
    models: Path
    first: Path   # the export ingested into db
    second: Path  # a later export (other days, more customers), not yet ingested

    def settings(self) -> Settings:
        return Settings(db_path=self.db, models_dir=self.models, secret=secret())

    def copy_to(self, folder: Path) -> Shop:
        """An independent copy (database and models) under ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.db, folder / self.db.name)
        shutil.copytree(self.models, folder / self.models.name)
        return Shop(folder, folder / self.db.name, folder / self.models.name, self.first, self.second)


def secret() -> str:
    """tests/conftest.py's secret (session fixtures run before its per-test environment)."""
    return TEST_SECRET


def current_version(models: Path) -> str:
    return (models / "CURRENT").read_text(encoding="utf-8").strip()


def child_env() -> dict[str, str]:
    """The environment for a child Python process that imports the project."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def busy_customer(db: Path) -> str:
    """The pseudonym of the customer with the most events (never a cold start)."""
    from analytics.db import connect_read_only

    with connect_read_only(db) as con:
        return con.execute("SELECT user_id FROM events GROUP BY user_id ORDER BY count(*) DESC, user_id LIMIT 1"
                           ).fetchone()[0]


def event_count(db: Path) -> int:
    from analytics.db import connect_read_only

    with connect_read_only(db) as con:
        return con.execute("SELECT count(*) FROM events").fetchone()[0]

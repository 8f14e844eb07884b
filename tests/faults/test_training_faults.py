"""A training run that dies half-way costs nothing: the previous version stays loadable and in use."""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from errors import RecsightError
from models.registry import VERSIONS_DIR, write_version
from tests.faults.support import Shop, busy_customer, child_env, current_version
from tests.training import fast_train
from workflows.recommenders import forget_all, recommender_for

# The child trains, and stalls while writing the new version: both rankers are on disk, the
# attention network is not. The parent kills it there with SIGKILL (no cleanup code runs).
_STALLING_TRAINER = """
import sys, time
from pathlib import Path
from models.attention import AttentionModel
from tests.training import fast_train

def stall(self, path):
    Path(sys.argv[3]).write_text("writing the version")
    time.sleep(600)

AttentionModel.save = stall
fast_train(Path(sys.argv[1]), Path(sys.argv[2]))
"""


def test_a_training_process_killed_while_writing_its_version_leaves_the_previous_one_in_use(
        shop: Shop, tmp_path: Path) -> None:
    before = current_version(shop.models)
    user = busy_customer(shop.db)
    expected = recommender_for(shop.settings()).recommend(user, 5).items
    marker = tmp_path / "stalled"
    child = subprocess.Popen([sys.executable, "-c", _STALLING_TRAINER, str(shop.db), str(shop.models), str(marker)],
                             cwd=tmp_path, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, child.stdout.read().decode(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "the training child never reached the version write"
            time.sleep(0.1)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -9

    half_written = list((shop.models / VERSIONS_DIR).glob(".staging-*"))
    assert half_written and (half_written[0] / "ranker.txt").exists()  # the kill did land mid-write
    assert current_version(shop.models) == before
    forget_all()  # a server process started now (or restarted) loads the previous version
    served = recommender_for(shop.settings())
    assert served.artifact.path.name == before
    assert served.recommend(user, 5).items == expected


def test_a_full_disk_while_writing_a_version_is_one_clear_line_and_keeps_the_previous_one(shop: Shop) -> None:
    before = current_version(shop.models)
    user = busy_customer(shop.db)
    served = recommender_for(shop.settings())
    expected = served.recommend(user, 5).items
    trained = shop.models / VERSIONS_DIR / before

    def fill(folder: Path) -> dict:  # what models.training.train's fill does, until the disk is full
        shutil.copy(trained / "ranker.txt", folder / "ranker.txt")
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "hybrid.txt"))

    with pytest.raises(RecsightError) as caught:
        write_version(shop.models, fill)

    message = str(caught.value)
    assert "\n" not in message and "disk is full" in message and "previous version stays in use" in message
    assert current_version(shop.models) == before
    assert not list((shop.models / VERSIONS_DIR).glob(".staging-*"))  # the half-written version is gone
    assert recommender_for(shop.settings()) is served  # nothing changed on disk: no reload
    assert served.recommend(user, 5).items == expected


def test_the_server_keeps_answering_during_training_and_then_serves_the_new_version(shop: Shop) -> None:
    settings = shop.settings()
    old = recommender_for(settings)
    old_version = old.artifact.path.name
    user = busy_customer(shop.db)
    answered: list[str] = []
    failures: list[BaseException] = []
    done = threading.Event()

    def agent() -> None:  # a support agent looking the customer up again and again
        while not done.is_set():
            try:
                recommender = recommender_for(settings)
                assert recommender.recommend(user, 5).items
                answered.append(recommender.artifact.path.name)
            except BaseException as exc:  # noqa: BLE001 - any failure is the test's finding
                failures.append(exc)
            time.sleep(0.05)

    thread = threading.Thread(target=agent, daemon=True)
    thread.start()
    try:
        fast_train(shop.db, shop.models)
        new_version = current_version(shop.models)
        deadline = time.monotonic() + 60  # the agent's next lookups load the new version
        while not failures and new_version not in answered and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        done.set()
        thread.join(timeout=60)

    assert failures == []
    assert new_version != old_version
    assert answered[0] == old_version and answered[-1] == new_version  # picked up without a restart
    assert recommender_for(settings) is not old

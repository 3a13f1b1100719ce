"""Lock files that their holders remove (a deleted wiki's) still exclude: real flocks on real files,
threads standing in for processes (flock locks belong to the open file, so they exclude alike)."""
from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from wikibot.gitd.locks import LockTimeout, file_lock
from wikibot.testing.servers import wait_until

WAIT = 60.0  # seconds: only reached when the code under test deadlocks


def _blocked_on(path: Path) -> bool:
    """Whether some flock waits on the file at `path` now (Linux lists waiters in /proc/locks with `->`)."""
    inode = f":{path.stat().st_ino} "
    return any("->" in line and inode in line for line in Path("/proc/locks").read_text().splitlines())


def test_removing_lock_files_on_release_never_lets_two_hold_one_lock(tmp_path):
    names = [tmp_path / "owner" / f"w{i}.lock" for i in range(2)]  # one folder: removed when both files go
    inside = {path: 0 for path in names}
    overlaps: list[Path] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(150):
                path = rng.choice(names)
                with file_lock(path, timeout=WAIT if rng.random() < 0.5 else None) as held:
                    with guard:
                        inside[path] += 1
                        if inside[path] > 1:
                            overlaps.append(path)
                    threading.Event().wait(rng.random() / 2000)
                    with guard:
                        inside[path] -= 1
                    if rng.random() < 0.5:
                        held.remove()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive()
    assert errors == [] and overlaps == []


def test_a_taker_that_waited_on_a_removed_file_locks_the_one_on_disk(tmp_path):
    path = tmp_path / "owner" / "wiki.lock"
    order: list[str] = []

    def take() -> None:
        with file_lock(path):  # blocking: listed as a waiter in /proc/locks
            order.append("waiter")

    with file_lock(path) as held:
        waiting = threading.Thread(target=take)
        waiting.start()
        wait_until(lambda: _blocked_on(path), timeout=WAIT, interval=0.01, what="the waiter queued on the old file")
        held.remove()
        order.append("remover done")
    waiting.join(WAIT)
    assert not waiting.is_alive() and order == ["remover done", "waiter"]
    assert path.exists()  # the waiter made a new file, and it stays (it did not ask to remove it)
    with file_lock(path, timeout=0.5):  # free again: the waiter's lock was released
        pass


def test_the_last_holder_removes_the_file_and_the_emptied_folder_only(tmp_path):
    first, second = tmp_path / "owner" / "a.lock", tmp_path / "owner" / "b.lock"
    with file_lock(second):
        pass
    with file_lock(first) as held:
        held.remove()
    assert not first.exists() and second.exists()  # the folder holds another lock: it stays
    with file_lock(second) as held:
        held.remove()
    assert not (tmp_path / "owner").exists() and tmp_path.is_dir()


def test_a_shared_holder_may_not_remove_and_a_busy_lock_still_times_out(tmp_path):
    path = tmp_path / "owner" / "wiki.lock"
    with file_lock(path, shared=True) as held, pytest.raises(ValueError):
        held.remove()
    with file_lock(path):
        with pytest.raises(LockTimeout):
            with file_lock(path, timeout=0.2):
                pass

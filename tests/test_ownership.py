"""Who holds the local index: one owner per anchor, found by the others; builds serialised across processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from dbmeta_app.config import Profile
from dbmeta_app.ownership import Anchor, BuildLock, IndexBusyError, anchor_path, lite_path, served_identity

ROOT = Path(__file__).resolve().parent.parent


def _holder(anchor: Path, *, build: bool = False) -> subprocess.Popen[str]:
    """Another process that claims the anchor (or holds its build lock) until it is killed."""
    code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from dbmeta_app.ownership import Anchor
        a = Anchor(Path({str(anchor)!r}), kind="server", served={{"default": "abc"}})
        if {build!r}:
            with a.build_lock().hold("other process", 5):
                print("held", flush=True)
                time.sleep(60)
        assert a.claim()
        a.publish(url="http://127.0.0.1:1", milvus="http://127.0.0.1:2")
        print("held", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_one_process_owns_an_anchor_and_the_others_read_its_record(tmp_path: Path) -> None:
    path = tmp_path / "milvus.db"
    holder = _holder(path)
    try:
        mine = Anchor(path, kind="cli")
        assert mine.claim() is False and not mine.held
        record = mine.owner()
        assert record is not None and record.pid == holder.pid and record.kind == "server"
        assert record.url == "http://127.0.0.1:1" and record.milvus == "http://127.0.0.1:2"
        assert record.served == {"default": "abc"} and len(record.token) > 20
        # the record holds a token for local index requests: the same user only
        assert (path.parent / "milvus.db.owner.json").stat().st_mode & 0o077 == 0
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    # the owner died without cleaning up: its record is ignored and the next claim succeeds
    assert (path.parent / "milvus.db.owner.json").exists()
    after = Anchor(path, kind="server", served={"p": "x"})
    assert after.owner() is None
    assert after.claim() and after.owner() is not None and after.owner().pid == os.getpid()  # type: ignore[union-attr]
    after.publish(url="http://127.0.0.1:9")
    assert json.loads((path.parent / "milvus.db.owner.json").read_text())["url"] == "http://127.0.0.1:9"
    after.release()
    assert not (path.parent / "milvus.db.owner.json").exists() and Anchor(path).owner() is None


def test_a_second_claim_in_the_same_process_fails_while_the_first_holds(tmp_path: Path) -> None:
    first, second = Anchor(tmp_path / "m.db", kind="server"), Anchor(tmp_path / "m.db", kind="cli")
    assert first.claim() and not second.claim()
    assert second.owner() == first.record
    first.release()
    assert second.claim()
    second.release()


def test_the_build_lock_serialises_threads_and_waits_for_another_process(tmp_path: Path) -> None:
    lock = BuildLock(tmp_path / "m.db.build.lock")
    inside: list[int] = []
    overlaps: list[int] = []

    def build(n: int) -> None:
        with lock.hold(f"build {n}", 10):
            inside.append(n)
            if len(inside) > 1:
                overlaps.append(n)
            time.sleep(0.05)
            inside.remove(n)

    threads = [threading.Thread(target=build, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert overlaps == []

    other = _holder(tmp_path / "m.db", build=True)
    try:
        started = time.monotonic()
        with pytest.raises(IndexBusyError, match="another process"), lock.hold("mine", 0.3):
            pass
        assert time.monotonic() - started >= 0.3
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait(10)
    with lock.hold("mine", 5):  # the dead process's lock went with it
        pass


def _profile(url: str, **extra: object) -> Profile:
    return Profile(name="p", database_url=SecretStr(url), **extra)  # type: ignore[arg-type]


def test_the_served_identity_names_the_database_never_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = served_identity(_profile("postgresql://app:one@db.example:5432/sales"))
    assert a == served_identity(_profile("postgresql://app:two@db.example:5432/sales"))  # password left out
    assert a not in {
        served_identity(_profile("postgresql://app:one@db.example:5432/hr")),
        served_identity(_profile("postgresql://other:one@db.example:5432/sales")),
        served_identity(_profile("postgresql://app:one@db2.example:5432/sales")),
        served_identity(_profile("postgresql://app:one@db.example:5433/sales")),
        served_identity(_profile("postgresql://app:one@db.example:5432/sales", include_schemas=("x",))),
    }
    monkeypatch.chdir(tmp_path)
    relative = served_identity(_profile("sqlite:///w.db"))
    assert relative == served_identity(_profile(f"sqlite:///{tmp_path / 'w.db'}"))


def test_the_anchor_is_the_lite_file_or_the_data_dir(make_settings: Any, tmp_path: Path) -> None:
    lite = make_settings(search_backend="milvus")
    assert lite_path(lite) == (tmp_path / "data" / "milvus.db").resolve() == anchor_path(lite)
    server = make_settings(search_backend="milvus", milvus_uri="http://milvus:19530")
    keyword = make_settings()
    assert lite_path(server) is None and anchor_path(server) == (tmp_path / "data" / "dbmeta").resolve()
    assert anchor_path(keyword) == anchor_path(server)

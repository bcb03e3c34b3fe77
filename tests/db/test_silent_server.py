"""A database server that stops answering (hung, frozen, a stalled network path) cannot hang a worker.

The server's own timeouts do nothing when it does not answer at all; the silence watchdog cuts the
connection's socket, the driver raises, and the next connection works once the server answers again.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from dbmeta_app.config import Profile
from dbmeta_app.db.engines import create_profile_engine
from dbmeta_app.db.session import SILENCE_KEY, read_only_session

pytestmark = pytest.mark.integration


class StallingProxy:
    """Forward TCP to a server until ``stall`` is set; then accept and read, but pass nothing on."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.stall = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if not self.stall.is_set():
                    sink.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()
        for s in self.sockets:
            s.close()


@pytest.fixture(params=["postgresql", "mariadb"])
def stalled(request: pytest.FixtureRequest) -> Iterator[tuple[StallingProxy, sa.Engine]]:
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
    else:
        url = request.getfixturevalue("mysql_url")
    target = sa.make_url(url)
    proxy = StallingProxy(target.port or (5432 if request.param == "postgresql" else 3306))
    through = target.set(port=proxy.port).render_as_string(hide_password=False)
    engine = create_profile_engine(Profile(name="p", database_url=through), preflight=True)
    try:
        yield proxy, engine
    finally:
        engine.dispose()
        proxy.close()


# PyMySQL waits for a new connection's greeting as long as for any read (read_timeout, 60 s): a MySQL
# checkout's reconnect to a silent server is bounded, but by a minute; its statement cut is tested below.
@pytest.mark.parametrize("stalled", ["postgresql"], indirect=True)
def test_a_read_only_session_on_a_silent_server_fails_within_its_bound_and_recovers(
    stalled: tuple[StallingProxy, sa.Engine],
) -> None:
    proxy, engine = stalled
    with read_only_session(engine, 300) as session:
        assert session.run("SELECT 1").scalar() == 1
    proxy.stall.set()
    started = time.monotonic()
    with pytest.raises(sa.exc.DBAPIError), read_only_session(engine, 300) as session:
        session.run("SELECT 1")
    # the checkout's ping (2 s), a new connection's connect timeout (5 s) or the session's bound (2.6 s), and
    # slack for a loaded machine: bounded, where it waited for ever
    assert time.monotonic() - started < 15
    proxy.stall.clear()
    with read_only_session(engine, 300) as session:
        assert session.run("SELECT 1").scalar() == 1


def test_the_service_s_own_reads_on_a_silent_server_are_cut_too(
    stalled: tuple[StallingProxy, sa.Engine],
) -> None:
    proxy, engine = stalled
    with engine.connect() as conn:
        conn.info[SILENCE_KEY] = 1.0  # the default (a minute) is for catalog reads of a large warehouse
        try:
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1
            proxy.stall.set()
            started = time.monotonic()
            with pytest.raises(sa.exc.DBAPIError):
                conn.exec_driver_sql("SELECT 2")
            assert time.monotonic() - started < 1.0 + 3
            assert conn.invalidated  # discarded: never lent out again
        finally:
            if not conn.invalidated:
                conn.info.pop(SILENCE_KEY, None)


def test_a_statement_that_fails_leaves_no_watchdog_to_cut_the_next_one(pg_url: str) -> None:
    engine = create_profile_engine(Profile(name="p", database_url=pg_url), pool_size=1)
    try:
        with engine.connect() as conn:
            conn.info[SILENCE_KEY] = 0.5
            for _ in range(3):
                with pytest.raises(sa.exc.ProgrammingError):
                    conn.exec_driver_sql("SELEKT 1")
                conn.rollback()
            time.sleep(1.0)  # a watchdog left armed would have cut the connection by now
            assert conn.exec_driver_sql("SELECT pg_sleep(0.1), 1").one()[1] == 1
            conn.info.pop(SILENCE_KEY, None)
    finally:
        engine.dispose()


def test_watchdogs_share_one_timer_thread_fire_when_due_and_are_dropped_once_disarmed() -> None:
    from dbmeta_app.db import session

    fired: list[int] = []
    threads = threading.active_count()
    for _ in range(5000):  # statements that finish in time: nothing fires, and their deadlines do not pile up
        with session._Watchdog(60, lambda: fired.append(1)):
            pass
    assert threading.active_count() <= threads + 1  # at most the one timer thread, started on first use
    assert len(session._DEADLINES._heap) < 2500
    started = time.monotonic()
    with session._Watchdog(0.2, lambda: fired.append(2)) as due:
        while not due.fired and time.monotonic() - started < 5:
            time.sleep(0.01)
    assert fired == [2] and 0.2 <= time.monotonic() - started < 5

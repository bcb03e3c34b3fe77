"""The least-privilege report: MariaDB grants parsed, SQLite files, and the report's short-lived cache."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dbmeta_app.preflight import privileges
from dbmeta_app.preflight.privileges import (
    PrivilegeCheck,
    PrivilegeReport,
    inspect_privileges,
    parse_mysql_grants,
)


def test_select_and_show_view_are_all_a_metadata_service_needs() -> None:
    problems, roles = parse_mysql_grants(
        ["GRANT USAGE ON *.* TO `svc`@`%`", "GRANT SELECT, SHOW VIEW ON `shop`.* TO `svc`@`%`"]
    )
    assert problems == [] and roles == []


def test_every_other_privilege_is_reported_with_its_scope() -> None:
    problems, _ = parse_mysql_grants(
        [
            "GRANT SELECT, EXECUTE ON `shop`.* TO `svc`@`10.0.0.5`",
            "GRANT SELECT (a, b), INSERT (c) ON `shop`.`t` TO `svc`@`10.0.0.5`",
            "GRANT FILE, PROCESS, SUPER, CONNECTION ADMIN ON *.* TO `svc`@`10.0.0.5` WITH GRANT OPTION",
            "GRANT CREATE ROUTINE, ALTER ROUTINE ON `shop`.* TO `svc`@`10.0.0.5`",
        ]
    )
    assert problems[0] == "EXECUTE (stored functions could run; the service never needs it) on shop.*"
    assert problems[1] == "INSERT on shop.t"
    assert problems[2].startswith("FILE, PROCESS, SUPER, CONNECTION ADMIN, GRANT OPTION") and problems[
        2
    ].endswith("on *.*")
    assert problems[3] == "CREATE ROUTINE, ALTER ROUTINE on shop.*"
    assert not any("svc" in p or "10.0.0.5" in p for p in problems)


def test_proxy_grants_and_password_hashes_never_reach_the_report() -> None:
    problems, roles = parse_mysql_grants(
        [
            "GRANT USAGE ON *.* TO `svc`@`%` IDENTIFIED BY PASSWORD '*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19'",
            "GRANT PROXY ON ''@'%' TO 'svc'@'%' WITH GRANT OPTION",
            "GRANT `etl_role` TO `svc`@`%`",
        ]
    )
    assert problems[0] == "PROXY (can act as other users)"
    assert not any("2470C0" in p or "svc" in p for p in problems)
    assert roles == ["`etl_role`"]


def test_a_writable_sqlite_file_is_reported_and_a_read_only_one_is_not(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    sa.create_engine(f"sqlite:///{path}").connect().close()
    writable = inspect_privileges(sa.create_engine(f"sqlite:///{path}"))
    assert writable.checked and "writable" in writable.problems[0] and "mode=ro" in writable.problems[0]
    assert inspect_privileges(sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")).least_privilege
    assert inspect_privileges(sa.create_engine("sqlite://")).least_privilege


def test_a_report_is_reused_while_fresh_then_inspected_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def fake(engine: sa.Engine) -> PrivilegeReport:
        calls.append(1)
        return PrivilegeReport("postgresql", ("superuser",))

    monkeypatch.setattr(privileges, "inspect_privileges", fake)
    check = PrivilegeCheck(ttl=60)
    engine = sa.create_engine("sqlite://")
    assert check.report(engine).problems == ("superuser",) and check.report(engine) is check.last
    assert len(calls) == 1
    check.ttl = 0
    check.report(engine)
    assert len(calls) == 2


def test_an_inspection_that_fails_keeps_the_last_good_report(monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes = [
        PrivilegeReport("postgresql", ("superuser",)),
        PrivilegeReport("postgresql", checked=False, error="x"),
    ]
    monkeypatch.setattr(privileges, "inspect_privileges", lambda engine: outcomes.pop(0))
    check = PrivilegeCheck(ttl=0)
    engine = sa.create_engine("sqlite://")
    first = check.report(engine)
    time.sleep(0.01)
    assert check.report(engine) is first  # a role does not lose its rights because the database is down
    fresh = PrivilegeCheck()
    monkeypatch.setattr(
        privileges, "inspect_privileges", lambda engine: PrivilegeReport("x", checked=False, error="e")
    )
    assert fresh.report(engine).checked is False and fresh.report(engine).to_json()["checked"] is False


def test_start_up_logs_each_profile_once_and_readyz_reports_it(
    make_settings: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from fastapi.testclient import TestClient

    from dbmeta_app.main import create_app

    path = tmp_path / "w.db"
    sa.create_engine(f"sqlite:///{path}").connect().close()
    profiles = tmp_path / "profiles.yml"
    profiles.write_text(
        "profiles:\n"
        f"  rw: {{database_url: 'sqlite:///{path}'}}\n"
        f"  ro: {{database_url: 'sqlite:///file:{path}?mode=ro&uri=true'}}\n"
    )
    settings = make_settings(profiles_file=profiles, default_profile="ro")
    with caplog.at_level("INFO", logger="dbmeta_app.runtime"), TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 10
        while (
            len([r for r in caplog.records if r.name == "dbmeta_app.runtime"]) < 2
            and time.monotonic() < deadline
        ):
            time.sleep(0.02)
        ready = client.get("/readyz")
    lines = {
        r.getMessage().split("profile=")[1].split(" ")[0]: r
        for r in caplog.records
        if r.name == "dbmeta_app.runtime"
    }
    assert lines["rw"].levelname == "WARNING" and "writable" in lines["rw"].getMessage()
    assert lines["ro"].levelname == "INFO" and "least privilege" in lines["ro"].getMessage()
    assert ready.status_code == 200
    assert ready.json()["checks"]["privileges"]["ro"] == {"least_privilege": True, "problems": []}
    assert ready.json()["checks"]["privileges"]["rw"]["least_privilege"] is False

"""Settings keep the operators' env names, fail at start-up naming the variable, and load profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbmeta_app.config import Settings, load_settings
from dbmeta_app.errors import ConfigError, UnknownProfileError
from dbmeta_app.logging_setup import redact
from dbmeta_app.search.milvus_index import DEFAULT_MIRROR_MAX_ROWS


def test_defaults_match_the_operators_expectations(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = load_settings(data_dir=tmp_path)
    assert (s.redis_host, s.redis_port, s.redis_db, s.redis_cache_enabled) == ("localhost", 6379, 0, True)
    assert s.redis_password is None
    assert list(s.profiles) == ["default"] and s.profiles["default"].sample
    # the setting's default and the index's own (benches, direct users of TableIndex) are one number
    assert s.search_mirror_max_rows == DEFAULT_MIRROR_MAX_ROWS


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("REDIS_PORT", "abc"),
        ("REDIS_PORT", "70000"),
        ("REDIS_DB", "-1"),
        ("DATA_EXAMPLES", "lots"),
        ("LOG_LEVEL", "LOUD"),
        ("REDIS_CACHE_ENABLED", "maybe"),
        ("DATABASE_URL", "not a url"),
        # accepted before, then ignored (files) or failing on each search (the URI)
        ("INSTRUCTIONS_FILE", "/nonexistent/instructions.yml"),
        ("EXAMPLES_DIR", "/nonexistent/examples"),
        ("MILVUS_URI", "ftp://milvus.internal"),
        # the Redis connection's name and every cache key are made of them: a space silently turned Redis off
        ("CLIENT", "a/b c"),
        ("ENV", "prod\nx"),
        ("CLIENT", "x" * 65),
    ],
)
def test_bad_settings_fail_with_a_message_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert var in str(err.value)


def test_env_names_are_read_without_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REDIS_HOST", "redis.internal")
    monkeypatch.setenv("REDIS_PASSWORD", "pw")
    monkeypatch.setenv("CLIENT", "acme")
    monkeypatch.setenv("ENV", "prod")
    monkeypatch.setenv("DATA_EXAMPLES", "true")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db/x")
    s = load_settings(data_dir=tmp_path)
    assert s.redis_host == "redis.internal" and s.redis_password is not None
    assert (s.client, s.env, s.data_examples) == ("acme", "prod", 3)
    assert s.profiles["default"].database_url.get_secret_value().startswith("postgresql+psycopg://")
    assert "p@" not in repr(s)


def test_profiles_file_with_env_references_and_relative_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "desc.yml").write_text("tables: {}\n")
    (tmp_path / "profiles.yml").write_text(
        "profiles:\n"
        "  sales:\n"
        "    database_url: ${SALES_URL}\n"
        "    include_schemas: [public, sales]\n"
        "    descriptions_file: desc.yml\n"
        "    preflight: {max_estimated_rows: 1000000}\n"
        "  hr:\n"
        "    database_url: mysql://root@127.0.0.1/hr\n"
    )
    monkeypatch.setenv("SALES_URL", "postgresql://postgres@127.0.0.1/test")
    s = load_settings(profiles_file=tmp_path / "profiles.yml", default_profile="sales")
    assert set(s.profiles) == {"sales", "hr"}
    assert s.profile(None).include_schemas == ("public", "sales")
    assert s.profile("sales").descriptions_file == tmp_path / "desc.yml"
    assert s.profile("hr").dialect == "mysql"
    with pytest.raises(UnknownProfileError):
        s.profile("finance")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("profiles: []", "non-empty 'profiles:' mapping"),
        ("profiles:\n  a: {}\n", "database_url is required"),
        ("profiles:\n  a: {database_url: '${NOPE_NOT_SET}'}\n", "NOPE_NOT_SET"),
        ("profiles:\n  a: {database_url: 'sqlite://', colour: red}\n", "colour"),
        ("profiles:\n  a: {database_url: 'sqlite://', descriptions_file: missing.yml}\n", "does not exist"),
        ("profiles: [unclosed", "not valid YAML"),
    ],
)
def test_bad_profiles_files_are_refused_at_start_up(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "profiles.yml"
    path.write_text(content)
    with pytest.raises(ConfigError) as err:
        load_settings(profiles_file=path, default_profile="a")
    assert message in str(err.value)


def test_default_profile_must_be_one_of_the_profiles(tmp_path: Path) -> None:
    path = tmp_path / "profiles.yml"
    path.write_text("profiles:\n  hr: {database_url: 'sqlite://'}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(profiles_file=path, default_profile="sales")
    assert "DEFAULT_PROFILE 'sales'" in str(err.value) and "hr" in str(err.value)


def test_a_profiles_file_of_one_profile_serves_it_without_default_profile(tmp_path: Path) -> None:
    path = tmp_path / "profiles.yml"
    path.write_text("profiles:\n  hr: {database_url: 'sqlite://'}\n")
    s = load_settings(profiles_file=path)
    assert s.default_profile == "hr" and s.profile(None).name == "hr"
    # two profiles: which one is meant is the operator's to say
    path.write_text("profiles:\n  hr: {database_url: 'sqlite://'}\n  sales: {database_url: 'sqlite://'}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(profiles_file=path)
    assert "DEFAULT_PROFILE 'default'" in str(err.value)


def test_placeholder_admin_tokens_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(data_dir=tmp_path, admin_token="changeme")
    assert "ADMIN_TOKEN" in str(err.value)


@pytest.mark.parametrize("field", ["admin_token", "api_token"])
@pytest.mark.parametrize("token", ["x", "hunter2", "0123456789abcde"])
def test_a_guessable_short_token_is_refused_naming_the_variable(
    tmp_path: Path, field: str, token: str
) -> None:
    # a bearer token of a few characters falls to a guessing loop; say so at start, not after a breach
    with pytest.raises(ConfigError) as err:
        load_settings(data_dir=tmp_path, **{field: token})
    assert field.upper() in str(err.value) and "at least 16 characters" in str(err.value)
    assert len(token) < 4 or token not in str(err.value)  # never the value ("x" is in any sentence)


def test_a_token_of_16_characters_is_taken(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, admin_token="0123456789abcdef", api_token="fedcba9876543210")
    assert settings.admin_token is not None and settings.admin_token.get_secret_value() == "0123456789abcdef"


def test_passwords_are_redacted_from_urls() -> None:
    assert redact("postgresql+psycopg://user:s3cr3t@db:5432/x") == "postgresql+psycopg://user:***@db:5432/x"


def test_settings_validation_never_prints_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "nonsense-with-s3cr3t")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "s3cr3t" not in str(err.value)


def test_the_example_env_names_every_setting_and_only_settings() -> None:
    import re

    from dbmeta_app.config import Settings

    text = (Path(__file__).resolve().parent.parent / ".env.example").read_text()
    named = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.M))
    assert named == {name.upper() for name in Settings.model_fields}


def test_redis_max_value_bytes_is_read_exported_and_from_dotenv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("REDIS_MAX_VALUE_BYTES=4096\n")
    assert load_settings(data_dir=tmp_path).redis_max_value_bytes == 4096
    monkeypatch.setenv("REDIS_MAX_VALUE_BYTES", "8192")
    assert load_settings(data_dir=tmp_path).redis_max_value_bytes == 8192
    monkeypatch.setenv("REDIS_MAX_VALUE_BYTES", "10")
    with pytest.raises(ConfigError, match="REDIS_MAX_VALUE_BYTES"):
        load_settings(data_dir=tmp_path)


def test_a_profiles_preflight_limits_are_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "profiles.yml"
    path.write_text(
        "profiles:\n"
        "  a:\n"
        "    database_url: 'sqlite:///x.db'\n"
        "    preflight: {max_relations: 500, concurrency: 2, queue: 0, queue_wait_ms: 0,"
        " max_plan_bytes: 4096, sample_views: [sales.v_orders]}\n"
    )
    limits = load_settings(profiles_file=path, default_profile="a").profile("a").preflight
    assert (limits.max_relations, limits.concurrency, limits.queue, limits.max_plan_bytes) == (
        500,
        2,
        0,
        4096,
    )
    assert limits.sample_views == ("sales.v_orders",) and limits.max_nodes == 100_000
    path.write_text("profiles:\n  a: {database_url: 'sqlite:///x.db', preflight: {concurrency: 0}}\n")
    with pytest.raises(ConfigError, match="concurrency"):
        load_settings(profiles_file=path, default_profile="a")


def test_a_profiles_file_reference_is_read_from_the_dotenv_file_and_an_exported_one_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # README: settings are exported or in a .env file in the working directory, an exported one winning;
    # a ${VAR} of the profiles file is one of them, as it is from SECRETS_DIR
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUDIT_M_URL", raising=False)
    (tmp_path / "p.yml").write_text("profiles:\n  m:\n    database_url: ${AUDIT_M_URL}\n")
    (tmp_path / ".env").write_text(f"PROFILES_FILE=p.yml\nAUDIT_M_URL=sqlite:///{tmp_path / 'dotenv.db'}\n")
    s = load_settings(data_dir=tmp_path / "data", default_profile="m")
    assert s.profiles["m"].database_url.get_secret_value().endswith("dotenv.db")
    monkeypatch.setenv("AUDIT_M_URL", f"sqlite:///{tmp_path / 'exported.db'}")
    s = load_settings(data_dir=tmp_path / "data", default_profile="m")
    assert s.profiles["m"].database_url.get_secret_value().endswith("exported.db")


@pytest.mark.parametrize(
    "var", ["PROFILES_FILE", "INSTRUCTIONS_FILE", "EXAMPLES_DIR", "SECRETS_DIR", "DATA_DIR"]
)
def test_an_empty_path_setting_means_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, var: str) -> None:
    # as an empty DATABASE_URL, REDIS_URL or ADMIN_TOKEN does: never '.' (the working directory)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(var, "")
    s = load_settings()
    assert (s.profiles_file, s.instructions_file, s.examples_dir, s.secrets_dir) == (None, None, None, None)
    assert s.data_dir == Path(".data")


@pytest.mark.parametrize("value", ["a/b", " "])
def test_a_bad_default_profile_is_named_as_the_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("DEFAULT_PROFILE", value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "DEFAULT_PROFILE:" in str(err.value) and "NAME" not in str(err.value), str(err.value)


def test_a_missing_secrets_dir_is_named_without_a_python_repr(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path / "absent"))
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(err.value) == f"Invalid settings: SECRETS_DIR: '{tmp_path / 'absent'}' is not a directory"


def test_every_setting_exported_empty_is_unset_and_keeps_its_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An empty value of any setting means unset (README), whether exported or written in .env."""
    monkeypatch.chdir(tmp_path)
    defaults = load_settings(data_dir=tmp_path)
    names = [name for name in Settings.model_fields if name != "data_dir"]
    for name in names:
        monkeypatch.setenv(name.upper(), "")
    exported = load_settings(data_dir=tmp_path)
    for name in names:
        monkeypatch.delenv(name.upper())
    (tmp_path / ".env").write_text("".join(f"{name.upper()}=\n" for name in names))
    from_file = load_settings(data_dir=tmp_path)
    for name in names:
        assert getattr(exported, name) == getattr(defaults, name), name
        assert getattr(from_file, name) == getattr(defaults, name), name

"""Configuration: defaults, lakestream.yaml, LAKESTREAM_* overrides, .env, clear errors."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from lakestream.cli import main
from lakestream.config import ENV_OVERRIDES, Settings, load_settings
from lakestream.errors import ConfigError


def write(folder: Path, text: str, name: str = "lakestream.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def value_at(settings: Settings, dotted: str) -> Any:
    node: Any = settings
    for part in dotted.split("."):
        node = getattr(node, part)
    return node.get_secret_value() if isinstance(node, SecretStr) else node


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No LAKESTREAM_* (or OpenWeather) variable from the developer's shell."""
    for var in ENV_OVERRIDES:
        monkeypatch.delenv(var, raising=False)


def test_defaults_apply_with_no_file_and_no_environment(tmp_path: Path) -> None:
    settings = load_settings(environ={}, cwd=tmp_path)
    assert settings.kafka.bootstrap_servers is None  # the embedded broker
    assert settings.kafka.group_id == "lakestream"
    assert settings.lake.root == "lakestream-data/lake"
    assert settings.lake.flush_interval_s == 5.0
    assert settings.data_dir == "lakestream-data"
    assert settings.warehouse_url is None and settings.anon_key is None
    assert settings.source == "defaults"


def test_an_empty_file_means_defaults(tmp_path: Path) -> None:
    write(tmp_path, "# nothing configured yet\n")
    assert load_settings(environ={}, cwd=tmp_path).lake.root == "lakestream-data/lake"


def test_values_come_from_lakestream_yaml_in_the_working_directory(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        kafka:
          bootstrap_servers: broker1:9092,broker2:9092
          group_id: analytics
        lake:
          root: s3://analytics/lake
          flush_interval_s: 2
        s3:
          endpoint: http://minio:9000
        warehouse_url: mysql+pymysql://dw@db/dw
        """,
    )
    settings = load_settings(environ={}, cwd=tmp_path)
    assert settings.kafka.bootstrap_servers == "broker1:9092,broker2:9092"
    assert settings.kafka.group_id == "analytics"
    assert settings.lake.root == "s3://analytics/lake"
    assert settings.lake.flush_interval_s == 2.0
    assert settings.s3.endpoint == "http://minio:9000"
    assert settings.warehouse_url == "mysql+pymysql://dw@db/dw"
    assert settings.source == str(path)


def test_an_explicit_config_path_is_used_instead_of_the_working_directory(tmp_path: Path) -> None:
    write(tmp_path, "lake: {root: from-cwd}\n")
    other = tmp_path / "conf"
    other.mkdir()
    explicit = write(other, "lake: {root: from-explicit}\n", "prod.yaml")
    assert load_settings(explicit, environ={}, cwd=tmp_path).lake.root == "from-explicit"


def test_a_missing_explicit_config_path_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as err:
        load_settings(missing, environ={}, cwd=tmp_path)
    assert str(missing) in err.value.message and "does not exist" in err.value.message
    assert err.value.hint is not None and "--config" in err.value.hint


# -- environment overrides ---------------------------------------------------------------

OVERRIDES: dict[str, tuple[str, str, Any]] = {
    # variable: (dotted key, value given, value expected)
    "LAKESTREAM_KAFKA_BOOTSTRAP_SERVERS": ("kafka.bootstrap_servers", "k1:9092", "k1:9092"),
    "LAKESTREAM_KAFKA_GROUP_ID": ("kafka.group_id", "g2", "g2"),
    "LAKESTREAM_KAFKA_DRAIN_TIMEOUT_S": ("kafka.drain_timeout_s", "45", 45.0),
    "LAKESTREAM_METRICS_PRINCIPAL": ("metrics.principal", "prometheus", "prometheus"),
    "LAKESTREAM_METRICS_OPEN": ("metrics.open", "true", True),
    "LAKESTREAM_LAKE_ROOT": ("lake.root", "s3://b/lake", "s3://b/lake"),
    "LAKESTREAM_FLUSH_INTERVAL_S": ("lake.flush_interval_s", "0.5", 0.5),
    "LAKESTREAM_COMPACT_IN_BAND": ("lake.compact_in_band", "false", False),
    "LAKESTREAM_COMPACT_MIN_FILES": ("lake.compact_min_files", "8", 8),
    "LAKESTREAM_COMPACT_TARGET_MB": ("lake.compact_target_mb", "64", 64),
    "LAKESTREAM_VACUUM_GRACE_HOURS": ("lake.vacuum_grace_hours", "0", 0),
    "LAKESTREAM_DATA_DIR": ("data_dir", "/srv/ls", "/srv/ls"),
    "LAKESTREAM_FEEDS_DIR": ("feeds_dir", "/srv/feeds", "/srv/feeds"),
    "LAKESTREAM_WAREHOUSE_URL": ("warehouse_url", "postgresql://w", "postgresql://w"),
    "LAKESTREAM_GOLD_URL": ("gold_url", "postgresql://g", "postgresql://g"),
    "LAKESTREAM_KSQLDB_URL": ("ksqldb_url", "http://ksql:8088", "http://ksql:8088"),
    "LAKESTREAM_NOTIFY_WEBHOOK_URL": ("notify_webhook_url", "http://hooks:9/x", "http://hooks:9/x"),
    "LAKESTREAM_S3_ENDPOINT": ("s3.endpoint", "http://s3:8333", "http://s3:8333"),
    "LAKESTREAM_S3_REGION": ("s3.region", "eu-west-3", "eu-west-3"),
    "LAKESTREAM_S3_ACCESS_KEY": ("s3.access_key", "AKIA123", "AKIA123"),
    "LAKESTREAM_S3_SECRET_KEY": ("s3.secret_key", "s3cr3t", "s3cr3t"),
    "LAKESTREAM_ANON_KEY": ("anon_key", "anon-k", "anon-k"),
    "OPENWEATHER_API_KEY": ("openweather_api_key", "ow-k", "ow-k"),
}


def test_every_documented_variable_is_an_override() -> None:
    spec_vars = {
        "LAKESTREAM_KAFKA_BOOTSTRAP_SERVERS", "LAKESTREAM_LAKE_ROOT", "LAKESTREAM_WAREHOUSE_URL",
        "LAKESTREAM_GOLD_URL", "LAKESTREAM_KSQLDB_URL", "LAKESTREAM_S3_ENDPOINT",
        "LAKESTREAM_S3_ACCESS_KEY", "LAKESTREAM_S3_SECRET_KEY", "LAKESTREAM_ANON_KEY",
        "OPENWEATHER_API_KEY",
    }  # fmt: skip
    assert spec_vars <= set(ENV_OVERRIDES)
    assert set(ENV_OVERRIDES) == set(OVERRIDES), "add the new variable to OVERRIDES above"


@pytest.mark.parametrize("var", sorted(OVERRIDES))
def test_each_environment_variable_overrides_its_key(tmp_path: Path, var: str) -> None:
    dotted, given, expected = OVERRIDES[var]
    settings = load_settings(environ={var: given}, cwd=tmp_path)
    assert value_at(settings, dotted) == expected
    assert f"${var}" in settings.source


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    write(tmp_path, "lake: {root: from-file, flush_interval_s: 9}\nkafka: {group_id: file-g}\n")
    settings = load_settings(environ={"LAKESTREAM_LAKE_ROOT": "from-env"}, cwd=tmp_path)
    assert settings.lake.root == "from-env"
    assert settings.lake.flush_interval_s == 9.0  # the file's other keys stay
    assert settings.kafka.group_id == "file-g"


def test_an_empty_variable_does_not_override(tmp_path: Path) -> None:
    write(tmp_path, "lake: {root: from-file}\n")
    assert load_settings(environ={"LAKESTREAM_LAKE_ROOT": ""}, cwd=tmp_path).lake.root == (
        "from-file"
    )


def test_a_bad_value_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"LAKESTREAM_FLUSH_INTERVAL_S": "soon"}, cwd=tmp_path)
    assert "$LAKESTREAM_FLUSH_INTERVAL_S" in err.value.message
    assert "lake.flush_interval_s" in err.value.message
    assert "lakestream.yaml" not in err.value.message  # there is no such file here


@pytest.mark.usefixtures("clean_env")
def test_dotenv_in_the_working_directory_is_read(tmp_path: Path) -> None:
    write(tmp_path, "LAKESTREAM_LAKE_ROOT=/from/dotenv\nLAKESTREAM_ANON_KEY=k-dotenv\n", ".env")
    settings = load_settings(cwd=tmp_path)
    assert settings.lake.root == "/from/dotenv"
    assert settings.anon_key is not None and settings.anon_key.get_secret_value() == "k-dotenv"


@pytest.mark.usefixtures("clean_env")
def test_the_real_environment_wins_over_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "LAKESTREAM_LAKE_ROOT=/from/dotenv\nLAKESTREAM_KAFKA_GROUP_ID=dot\n", ".env")
    monkeypatch.setenv("LAKESTREAM_LAKE_ROOT", "/from/env")
    settings = load_settings(cwd=tmp_path)
    assert settings.lake.root == "/from/env"
    assert settings.kafka.group_id == "dot"


# -- secrets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "key", "var"),
    [
        ("s3:\n  secret_key: hunter2\n", "s3.secret_key", "LAKESTREAM_S3_SECRET_KEY"),
        ("s3:\n  access_key: AKIA\n", "s3.access_key", "LAKESTREAM_S3_ACCESS_KEY"),
        ("anon_key: salt\n", "anon_key", "LAKESTREAM_ANON_KEY"),
        ("openweather_api_key: abc\n", "openweather_api_key", "OPENWEATHER_API_KEY"),
    ],
)
def test_a_secret_in_the_config_file_is_refused(
    tmp_path: Path, yaml_text: str, key: str, var: str
) -> None:
    path = write(tmp_path, yaml_text)
    with pytest.raises(ConfigError) as err:
        load_settings(environ={}, cwd=tmp_path)
    assert str(path) in err.value.message
    assert f"'{key}'" in err.value.message and "secret" in err.value.message
    assert err.value.hint is not None and f"${var}" in err.value.hint


def test_secrets_never_show_in_the_settings_repr(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"LAKESTREAM_S3_SECRET_KEY": "hunter2-secret", "LAKESTREAM_ANON_KEY": "salty"},
        cwd=tmp_path,
    )
    shown = f"{settings!r} {settings} {settings.model_dump_json()}"
    assert "hunter2-secret" not in shown and "salty" not in shown
    assert settings.s3.secret_key is not None
    assert settings.s3.secret_key.get_secret_value() == "hunter2-secret"


# -- mistakes in the file -----------------------------------------------------------------


def test_an_unknown_nested_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path, "lake:\n  rot: /data/lake\n")
    with pytest.raises(ConfigError) as err:
        load_settings(environ={}, cwd=tmp_path)
    assert err.value.message == f"{path}: unknown key 'lake.rot'"
    assert err.value.hint == "did you mean 'root'?"


def test_an_unknown_top_level_key_suggests_the_right_one(tmp_path: Path) -> None:
    write(tmp_path, "kafak:\n  group_id: x\n")
    with pytest.raises(ConfigError) as err:
        load_settings(environ={}, cwd=tmp_path)
    assert "unknown key 'kafak'" in err.value.message
    assert err.value.hint == "did you mean 'kafka'?"


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("lake:\n  flush_interval_s: soon\n", "lake.flush_interval_s"),
        ("lake:\n  flush_interval_s: 0\n", "lake.flush_interval_s"),
        ("kafka:\n  partitions: [1, 2]\n", "kafka.partitions"),
        ("kafka: 9092\n", "kafka"),
    ],
)
def test_a_wrong_type_names_the_file_and_key(tmp_path: Path, yaml_text: str, key: str) -> None:
    path = write(tmp_path, yaml_text)
    with pytest.raises(ConfigError) as err:
        load_settings(environ={}, cwd=tmp_path)
    assert err.value.message.startswith(f"{path}: '{key}': ")


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "kafka:\n  group_id: ok\nlake:\n  root: [unclosed\n  flush: 1\n")
    with pytest.raises(ConfigError) as err:
        load_settings(environ={}, cwd=tmp_path)
    assert str(path) in err.value.message
    assert "not valid YAML at line 5: expected ',' or ']', but got ':' (in the flow sequence " \
        "that starts at line 4)" in err.value.message


def config_error_of_cli(path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """What ``lakestream --config PATH feeds list`` prints on stderr; it must exit 1."""
    assert main(["--config", str(path), "feeds", "list"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    return err.splitlines()


@pytest.mark.parametrize(("content", "line"), [
    (b"lake:\n  root: lake\n\x80\x81\xfe\xff binary", 3),
    (bytes(range(256)) * 4, 2),
], ids=["binary-tail", "all-bytes"])
def test_a_binary_config_file_is_one_line_naming_file_and_line(
    tmp_path: Path, content: bytes, line: int, clean_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "lakestream.yaml"
    path.write_bytes(content)
    assert config_error_of_cli(path, capsys) == [
        f"error: {path}: not a text file: byte 0x80 at line {line} is not UTF-8",
        "  hint: a config file is UTF-8 YAML: check the path (--config) or save it as UTF-8",
    ]


def test_a_control_character_is_reported_at_its_line(
    tmp_path: Path, clean_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "lake:\n  root: lake\nkafka: \x00\n")
    assert config_error_of_cli(path, capsys)[0] == (
        f"error: {path}: not valid YAML at line 3: character #x0000 is not allowed "
        "(is this a binary file?)")


@pytest.mark.parametrize(("text", "message"), [
    ("kafka:\n  bootstrap_servers: [a, b\n",
     "not valid YAML at line 2: a flow sequence that starts here is never closed"),
    ("lake: {root: x\n", "not valid YAML at line 1: a flow mapping that starts here is never "
     "closed"),
    ("lake:\n  root: 'lake\n", "not valid YAML at line 2: a quoted scalar that starts here is "
     "never closed"),
    ("lake: x\n  root: y\n", "not valid YAML at line 2: mapping values are not allowed here"),
    ("lake:\n\troot: x\n",
     "not valid YAML at line 2: found character '\\t' that cannot start any token"),
], ids=["unclosed-list", "unclosed-mapping-one-line", "unclosed-quote", "bad-indent", "tab"])
def test_a_yaml_error_names_a_line_of_the_file_and_what_is_wrong(
    tmp_path: Path, text: str, message: str, clean_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write(tmp_path, text)
    lines = config_error_of_cli(path, capsys)
    assert lines == [f"error: {path}: {message}", "  hint: fix the syntax"]
    reported = int(message.split(" at line ")[1].split(":")[0])
    assert reported <= len(text.splitlines())  # never a line past the end of the file


def test_a_top_level_list_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "- kafka\n- lake\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_settings(environ={}, cwd=tmp_path)


def test_settings_are_frozen_after_load(tmp_path: Path) -> None:
    settings = load_settings(environ={}, cwd=tmp_path)
    with pytest.raises(ValidationError):
        settings.lake.root = "elsewhere"  # type: ignore[misc]

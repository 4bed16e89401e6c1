"""Configuration: defaults, lakestream.yaml, secrets refused in it, clear errors.

The environment (LAKESTREAM_* variables, .env) is tested in test_config_environment.py.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from lakestream.cli import main
from lakestream.config import Settings, load_settings
from lakestream.errors import ConfigError
from tests.conftest import clear_settings_environment


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
    clear_settings_environment(monkeypatch)


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


# -- secrets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "key", "var"),
    [
        ("s3:\n  secret_key: hunter2\n", "s3.secret_key", "LAKESTREAM_S3__SECRET_KEY"),
        ("s3:\n  access_key: AKIA\n", "s3.access_key", "LAKESTREAM_S3__ACCESS_KEY"),
        ("anon_key: salt\n", "anon_key", "LAKESTREAM_ANON_KEY"),
        ("openweather_api_key: abc\n", "openweather_api_key", "LAKESTREAM_OPENWEATHER_API_KEY"),
        ("kafka:\n  client_config:\n    sasl.password: pw\n",
         "kafka.client_config.sasl.password", "LAKESTREAM_KAFKA__CLIENT_CONFIG__SASL_PASSWORD"),
        ("kafka:\n  client_config:\n    ssl.key.password: pw\n",
         "kafka.client_config.ssl.key.password",
         "LAKESTREAM_KAFKA__CLIENT_CONFIG__SSL_KEY_PASSWORD"),
        ("kafka:\n  client_config:\n    sasl.oauthbearer.client.secret: s\n",
         "kafka.client_config.sasl.oauthbearer.client.secret",
         "LAKESTREAM_KAFKA__CLIENT_CONFIG__SASL_OAUTHBEARER_CLIENT_SECRET"),
        ("kafka:\n  client_config:\n    ssl.key.pem: '-----BEGIN PRIVATE KEY-----'\n",
         "kafka.client_config.ssl.key.pem", "LAKESTREAM_KAFKA__CLIENT_CONFIG__SSL_KEY_PEM"),
    ],
)
def test_a_secret_in_the_config_file_is_refused(
    tmp_path: Path, yaml_text: str, key: str, var: str
) -> None:
    path = write(tmp_path, yaml_text)
    with pytest.raises(ConfigError) as err:
        load_settings(environ={}, cwd=tmp_path)
    assert err.value.message == (
        f"{path}: '{key}' is a secret and may not be stored in a config file")
    assert err.value.hint == f"remove it and set ${var} in the environment or in .env"


def test_librdkafka_settings_that_are_not_secret_stay_in_the_file(tmp_path: Path) -> None:
    write(tmp_path, """
        kafka:
          client_config:
            security.protocol: SASL_SSL
            sasl.mechanism: SCRAM-SHA-512
            sasl.username: lakestream
            enable.idempotence: true
        """)
    settings = load_settings(environ={}, cwd=tmp_path)
    assert settings.kafka.client_config == {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "lakestream", "enable.idempotence": True}


@pytest.mark.parametrize(("yaml_text", "key", "var"), [
    ("notify_webhook_url: https://hook:t0ken@hooks.example/x\n", "notify_webhook_url",
     "LAKESTREAM_NOTIFY_WEBHOOK_URL"),
    ("kafka:\n  client_config:\n    sasl.oauthbearer.token.endpoint.url: "
     "https://u:pw@idp.example/token\n", "kafka.client_config.sasl.oauthbearer.token.endpoint.url",
     "LAKESTREAM_KAFKA__CLIENT_CONFIG__SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL"),
])
def test_a_url_with_a_password_is_refused_in_any_key(
    tmp_path: Path, yaml_text: str, key: str, var: str
) -> None:
    path = write(tmp_path, yaml_text)
    with pytest.raises(ConfigError) as err:
        load_settings(environ={}, cwd=tmp_path)
    assert err.value.message == f"{path}: '{key}' holds a password, and a config file may not"
    assert err.value.hint is not None and f"${var} " in err.value.hint


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
        settings.lake.root = "elsewhere"

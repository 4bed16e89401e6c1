"""Every setting from the environment by one rule: LAKESTREAM_<SECTION>__<KEY>.

The old variable names keep working, the environment beats .env beats the file, a bad
value or a mistyped name is one clear error naming the variable, and librdkafka secrets
(sasl.password, ...) come from the environment and nowhere else.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import textwrap
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from lakestream.cli import main
from lakestream.config import (
    CLIENT_CONFIG,
    ENV_ALIASES,
    Settings,
    env_name,
    load_settings,
    setting_keys,
    value_at,
)
from lakestream.errors import ConfigError
from lakestream.governance.secrets import secret_values
from lakestream.kafka.client import base_config
from tests.conftest import clear_settings_environment

KEYS = {key: field for key, field in setting_keys() if key != CLIENT_CONFIG}

# The variables documented before the rule existed; each must keep setting its key.
LEGACY = {
    "LAKESTREAM_KAFKA_BOOTSTRAP_SERVERS": "kafka.bootstrap_servers",
    "LAKESTREAM_KAFKA_GROUP_ID": "kafka.group_id",
    "LAKESTREAM_KAFKA_DRAIN_TIMEOUT_S": "kafka.drain_timeout_s",
    "LAKESTREAM_LAKE_ROOT": "lake.root",
    "LAKESTREAM_FLUSH_INTERVAL_S": "lake.flush_interval_s",
    "LAKESTREAM_COMPACT_IN_BAND": "lake.compact_in_band",
    "LAKESTREAM_COMPACT_MIN_FILES": "lake.compact_min_files",
    "LAKESTREAM_COMPACT_TARGET_MB": "lake.compact_target_mb",
    "LAKESTREAM_VACUUM_GRACE_HOURS": "lake.vacuum_grace_hours",
    "LAKESTREAM_DATA_DIR": "data_dir",
    "LAKESTREAM_FEEDS_DIR": "feeds_dir",
    "LAKESTREAM_WAREHOUSE_URL": "warehouse_url",
    "LAKESTREAM_GOLD_URL": "gold_url",
    "LAKESTREAM_KSQLDB_URL": "ksqldb_url",
    "LAKESTREAM_NOTIFY_WEBHOOK_URL": "notify_webhook_url",
    "LAKESTREAM_S3_ENDPOINT": "s3.endpoint",
    "LAKESTREAM_S3_REGION": "s3.region",
    "LAKESTREAM_S3_ACCESS_KEY": "s3.access_key",
    "LAKESTREAM_S3_SECRET_KEY": "s3.secret_key",
    "LAKESTREAM_METRICS_PRINCIPAL": "metrics.principal",
    "LAKESTREAM_METRICS_OPEN": "metrics.open",
    "LAKESTREAM_ANON_KEY": "anon_key",
    "OPENWEATHER_API_KEY": "openweather_api_key",
}


def write(folder: Path, text: str, name: str = "lakestream.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def plain(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def section_model(key: str) -> type[BaseModel]:
    model: Any = Settings
    for part in key.split(".")[:-1]:
        model = model.model_fields[part].annotation
    return model


def sample(key: str, field: FieldInfo) -> tuple[str, Any]:
    """A valid value for ``key`` that is not its default: (text of the variable, value loaded).

    Derived from the field's type, so a key added later is covered without editing this test;
    a key of a type not known here fails the test rather than being skipped.
    """
    kind = field.annotation
    if get_origin(kind) in (Union, UnionType):  # X | None
        kind = next(k for k in get_args(kind) if k is not type(None))
    default = field.get_default(call_default_factory=True)
    candidates: list[str]
    if kind is bool:
        candidates = ["false" if default else "true"]
    elif kind is int:
        candidates = [str(default + 1), str(default - 1)]
    elif kind is float:
        candidates = [str(default + 0.5), str(default / 2)]
    elif kind in (str, SecretStr):
        candidates = [f"from-env-{key}"]
    elif kind is dt.date:
        candidates = ["2001-02-03"]
    elif get_origin(kind) in (tuple, list):
        candidates = ['["from-env-1", "from-env-2"]']
    else:
        pytest.fail(f"{key}: no sample value for {field.annotation}; add its type to sample()")
    model, name = section_model(key), key.rsplit(".", 1)[-1]
    for text in candidates:
        raw = json.loads(text) if text.startswith("[") else text
        try:
            value = plain(getattr(model.model_validate({name: raw}), name))
        except ValueError:
            continue
        if value != plain(default):
            return text, value
    pytest.fail(f"{key}: none of {candidates} is a valid non-default value")


# -- the rule ----------------------------------------------------------------------------------


def test_the_rule_joins_the_key_levels_with_two_underscores() -> None:
    assert env_name("data_dir") == "LAKESTREAM_DATA_DIR"
    assert env_name("lake.root") == "LAKESTREAM_LAKE__ROOT"
    assert env_name("kafka.session_timeout_ms") == "LAKESTREAM_KAFKA__SESSION_TIMEOUT_MS"
    assert env_name("weather.cities") == "LAKESTREAM_WEATHER__CITIES"
    assert env_name("kafka.client_config.sasl.password") == (
        "LAKESTREAM_KAFKA__CLIENT_CONFIG__SASL_PASSWORD")


@pytest.mark.parametrize("key", sorted(KEYS))
def test_every_key_can_be_set_by_its_variable(tmp_path: Path, key: str) -> None:
    text, expected = sample(key, KEYS[key])
    name = env_name(key)
    settings = load_settings(environ={name: text}, cwd=tmp_path)
    assert plain(value_at(settings, key)) == expected
    assert settings.source == f"defaults + ${name}"
    lower = load_settings(environ={name.lower(): text}, cwd=tmp_path)  # names ignore case
    assert plain(value_at(lower, key)) == expected


def test_the_environment_sets_nested_keys_without_touching_the_others(tmp_path: Path) -> None:
    write(tmp_path, "kafka: {group_id: from-file, partitions: 3}\nlake: {root: from-file}\n")
    settings = load_settings(environ={
        "LAKESTREAM_KAFKA__PARTITIONS": "12", "LAKESTREAM_WEATHER__CITIES": '["Oslo"]',
    }, cwd=tmp_path)
    assert settings.kafka.partitions == 12 and settings.kafka.group_id == "from-file"
    assert settings.weather.cities == ("Oslo",) and settings.lake.root == "from-file"


# -- old names ---------------------------------------------------------------------------------


def test_the_aliases_are_only_the_old_names_that_the_rule_does_not_give() -> None:
    rule_names = {env_name(key) for key in KEYS}
    assert set(LEGACY) <= set(ENV_ALIASES) | rule_names
    assert not set(ENV_ALIASES) & rule_names
    assert set(ENV_ALIASES.values()) <= set(KEYS)


@pytest.mark.parametrize("name", sorted(LEGACY))
def test_every_old_variable_name_still_sets_its_key(tmp_path: Path, name: str) -> None:
    key = LEGACY[name]
    text, expected = sample(key, KEYS[key])
    settings = load_settings(environ={name: text}, cwd=tmp_path)
    assert plain(value_at(settings, key)) == expected
    assert f"${name}" in settings.source


@pytest.mark.parametrize("alias_first", [True, False])
def test_the_rule_name_wins_over_the_old_name_in_the_same_place(
    tmp_path: Path, alias_first: bool
) -> None:
    both = [("LAKESTREAM_LAKE_ROOT", "old"), ("LAKESTREAM_LAKE__ROOT", "new")]
    environ = dict(both if alias_first else both[::-1])
    settings = load_settings(environ=environ, cwd=tmp_path)
    assert settings.lake.root == "new"
    assert settings.source == "defaults + $LAKESTREAM_LAKE__ROOT"


# -- precedence: defaults < file < .env < environment ---------------------------------------


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    write(tmp_path, "lake: {root: from-file, flush_interval_s: 9}\nkafka: {group_id: file-g}\n")
    for name in ("LAKESTREAM_LAKE__ROOT", "LAKESTREAM_LAKE_ROOT"):
        settings = load_settings(environ={name: "from-env"}, cwd=tmp_path)
        assert settings.lake.root == "from-env"
        assert settings.lake.flush_interval_s == 9.0  # the file's other keys stay
        assert settings.kafka.group_id == "file-g"


def test_an_empty_variable_does_not_override(tmp_path: Path) -> None:
    write(tmp_path, "lake: {root: from-file}\n")
    for name in ("LAKESTREAM_LAKE__ROOT", "LAKESTREAM_LAKE_ROOT"):
        assert load_settings(environ={name: ""}, cwd=tmp_path).lake.root == "from-file"


def test_dotenv_in_the_working_directory_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_settings_environment(monkeypatch)
    write(tmp_path, "lake: {root: from-file}\nkafka: {partitions: 2}\n")
    write(tmp_path, "LAKESTREAM_LAKE__ROOT=/from/dotenv\nLAKESTREAM_ANON_KEY=k-dotenv\n"
          "LAKESTREAM_KAFKA__CLIENT_CONFIG__SASL_PASSWORD=pw-dotenv\n", ".env")
    settings = load_settings(cwd=tmp_path)
    assert settings.lake.root == "/from/dotenv"  # .env wins over the file
    assert settings.kafka.partitions == 2
    assert settings.anon_key is not None and settings.anon_key.get_secret_value() == "k-dotenv"
    assert settings.kafka.librdkafka_properties() == {"sasl.password": "pw-dotenv"}


@pytest.mark.parametrize(("in_dotenv", "in_environment"), [
    ("LAKESTREAM_LAKE__ROOT", "LAKESTREAM_LAKE__ROOT"),
    ("LAKESTREAM_LAKE__ROOT", "LAKESTREAM_LAKE_ROOT"),
    ("LAKESTREAM_LAKE_ROOT", "LAKESTREAM_LAKE__ROOT"),
])
def test_the_real_environment_wins_over_dotenv_whatever_the_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_dotenv: str, in_environment: str
) -> None:
    clear_settings_environment(monkeypatch)
    write(tmp_path, f"{in_dotenv}=/from/dotenv\nLAKESTREAM_KAFKA__GROUP_ID=dot\n", ".env")
    monkeypatch.setenv(in_environment, "/from/env")
    settings = load_settings(cwd=tmp_path)
    assert settings.lake.root == "/from/env"
    assert settings.kafka.group_id == "dot"


def test_a_given_environment_is_the_whole_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "LAKESTREAM_LAKE__ROOT=/from/dotenv\n", ".env")
    monkeypatch.setenv("LAKESTREAM_KAFKA__GROUP_ID", "from-process")
    settings = load_settings(environ={}, cwd=tmp_path)
    assert settings.lake.root == "lakestream-data/lake" and settings.kafka.group_id == "lakestream"


# -- bad values and unknown names ------------------------------------------------------------


@pytest.mark.parametrize(("name", "value", "key", "problem"), [
    ("LAKESTREAM_LAKE__FLUSH_INTERVAL_S", "soon", "lake.flush_interval_s", "a valid number"),
    ("LAKESTREAM_FLUSH_INTERVAL_S", "soon", "lake.flush_interval_s", "a valid number"),
    ("LAKESTREAM_KAFKA__PARTITIONS", "0", "kafka.partitions", "greater than or equal to 1"),
    ("LAKESTREAM_METRICS__OPEN", "maybe", "metrics.open", "a valid boolean"),
    ("LAKESTREAM_WEATHER__CITIES", "[1, 2]", "weather.cities", "a valid string"),
    ("LAKESTREAM_WEATHER__CITIES", "Paris,Oslo", "weather.cities", "not valid JSON"),
])
def test_a_bad_value_from_the_environment_names_the_variable(
    tmp_path: Path, name: str, value: str, key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={name: value}, cwd=tmp_path)
    assert err.value.message.startswith(f"${name}: '{key}': ")
    assert problem in err.value.message
    assert "lakestream.yaml" not in err.value.message  # there is no such file here


def test_a_bad_variable_is_one_line_from_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clear_settings_environment(monkeypatch)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAKESTREAM_LAKE__MAX_BATCH_RECORDS", "lots")
    assert main(["feeds", "list"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "ValidationError" not in err
    assert err.splitlines()[0].startswith(
        "error: $LAKESTREAM_LAKE__MAX_BATCH_RECORDS: 'lake.max_batch_records': ")


@pytest.mark.parametrize(("name", "hint"), [
    ("LAKESTREAM_KAFKA__PARTITONS", "did you mean $LAKESTREAM_KAFKA__PARTITIONS?"),
    ("LAKESTREAM_KAFKA_PARTITIONS", "did you mean $LAKESTREAM_KAFKA__PARTITIONS?"),
    ("LAKESTREAM_KAFKAA__GROUP_ID", "did you mean $LAKESTREAM_KAFKA__GROUP_ID?"),
    ("lakestream_lake__rot", "did you mean $LAKESTREAM_LAKE__ROOT?"),
    ("LAKESTREAM_WEATHER_CITIES", "did you mean $LAKESTREAM_WEATHER__CITIES?"),
    ("LAKESTREAM_KAFKA__CLIENT_CONFIG__SASL__PASSWORD",
     "$LAKESTREAM_KAFKA__CLIENT_CONFIG__SASL_PASSWORD sets sasl.password"),
    ("LAKESTREAM_KAFKA__CLIENT_CONFIG__SASL.PASSWORD",
     "$LAKESTREAM_KAFKA__CLIENT_CONFIG__SASL_PASSWORD sets sasl.password"),
    ("LAKESTREAM_KAFKA__CLIENT_CONFIG", "$LAKESTREAM_KAFKA__CLIENT_CONFIG__SASL_PASSWORD sets"),
    ("LAKESTREAM_KAFKA", "docs/configuration.md"),
    ("LAKESTREAM_SOURCE__X", "docs/configuration.md"),
])
def test_a_variable_that_looks_like_a_setting_but_names_none_is_refused(
    tmp_path: Path, name: str, hint: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={name: "1"}, cwd=tmp_path)
    assert err.value.message == f"${name} names no setting"
    assert err.value.hint is not None and hint in err.value.hint


def test_a_mistyped_variable_in_dotenv_is_refused_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_settings_environment(monkeypatch)
    write(tmp_path, "LAKESTREAM_LAKE__ROTO=/x\n", ".env")
    with pytest.raises(ConfigError, match=r"\$LAKESTREAM_LAKE__ROTO names no setting"):
        load_settings(cwd=tmp_path)


def test_other_lakestream_variables_are_not_settings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    environ = {"LAKESTREAM_CONFIG": "other.yaml", "LAKESTREAM_SPARK_MASTER": "local[2]",
               "LAKESTREAM_TEST_SEED": "7", "LAKESTREAM_SOURCE": "x", "LAKESTREAM_DATA_DIRS": "/d"}
    with caplog.at_level(logging.WARNING, logger="lakestream.config"):
        settings = load_settings(environ=environ, cwd=tmp_path)
    assert settings == load_settings(environ={}, cwd=tmp_path)
    # a near miss of a top-level key is not refused (that name space is shared) but warned of
    assert [r.getMessage() for r in caplog.records] == [
        "$LAKESTREAM_DATA_DIRS names no setting (ignored); did you mean $LAKESTREAM_DATA_DIR?"]


# -- librdkafka settings and their secrets ------------------------------------------------------


def test_librdkafka_sasl_settings_come_from_the_environment(tmp_path: Path) -> None:
    write(tmp_path, """
        kafka:
          bootstrap_servers: kafka-1:9092
          client_config:
            security.protocol: SASL_SSL
            sasl.mechanism: PLAIN
        """)
    settings = load_settings(environ={
        "LAKESTREAM_KAFKA__CLIENT_CONFIG__SASL_MECHANISM": "SCRAM-SHA-512",
        "LAKESTREAM_KAFKA__CLIENT_CONFIG__SASL_USERNAME": "lakestream",
        "lakestream_kafka__client_config__sasl_password": "pw-9f2c1e",
        "LAKESTREAM_KAFKA__CLIENT_CONFIG__ENABLE_IDEMPOTENCE": "true",
    }, cwd=tmp_path)
    assert base_config(settings, "kafka-1:9092") == {
        "bootstrap.servers": "kafka-1:9092",
        "security.protocol": "SASL_SSL",  # from the file
        "sasl.mechanism": "SCRAM-SHA-512",  # the environment wins over the file
        "sasl.username": "lakestream",
        "sasl.password": "pw-9f2c1e",
        "enable.idempotence": "true",  # librdkafka takes "true" as well as True
    }
    assert "$lakestream_kafka__client_config__sasl_password" in settings.source


def test_a_librdkafka_secret_never_shows_and_is_masked(tmp_path: Path) -> None:
    settings = load_settings(environ={
        "LAKESTREAM_KAFKA__CLIENT_CONFIG__SASL_PASSWORD": "pw-9f2c1e",
        "LAKESTREAM_KAFKA__CLIENT_CONFIG__SSL_KEY_PASSWORD": "kpw-41ab07",
        "LAKESTREAM_KAFKA__CLIENT_CONFIG__SASL_USERNAME": "lakestream",
    }, cwd=tmp_path)
    shown = f"{settings!r} {settings} {settings.model_dump_json()} {settings.model_dump()}"
    assert "pw-9f2c1e" not in shown and "kpw-41ab07" not in shown
    assert "lakestream" in shown  # a user name is not a secret
    assert set(secret_values(settings)) == {"pw-9f2c1e", "kpw-41ab07"}


_NAMES = st.one_of(
    st.sampled_from(sorted({env_name(key) for key in KEYS} | set(ENV_ALIASES))),
    st.builds(lambda key, cut: env_name(key)[:cut], st.sampled_from(sorted(KEYS)),
              st.integers(11, 40)),
    st.builds("LAKESTREAM_{}".format, st.text("ABCKLSAFEQ_", max_size=30)),
    st.builds("LAKESTREAM_KAFKA__CLIENT_CONFIG__{}".format, st.text("ABS_.", max_size=12)),
)
_VALUES = st.one_of(st.text(max_size=12), st.sampled_from(
    ["0", "-1", "1e400", "true", "[]", "[1]", '["a"]', "{}", "null", '{"a": 1}', "2001-02-30"]))


@settings(derandomize=True, database=None, deadline=None, max_examples=300,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(environ=st.dictionaries(_NAMES, _VALUES, max_size=4))
def test_any_environment_gives_settings_or_one_config_error(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    try:
        load_settings(environ=environ, cwd=tmp_path)
    except ConfigError as exc:
        assert exc.message.startswith("$"), exc.message  # it names the variable

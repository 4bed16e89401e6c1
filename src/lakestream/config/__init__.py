"""Configuration: ``lakestream.yaml``, then the environment (``LAKESTREAM_*``, ``.env``).

With no file and no environment, the embedded defaults apply: a Tansu broker
started on demand, a lake folder and an SQLite warehouse under ``./lakestream-data``.
Every key can be set from the environment by one rule (``LAKESTREAM_LAKE__ROOT``
sets ``lake.root``; see :mod:`lakestream.config.environment`). Secrets (S3 keys,
the anonymization key, API keys, librdkafka passwords, URL passwords) come only
from the environment or a ``.env`` file; a config file that holds one is refused.
"""

from lakestream.config.environment import ENV_ALIASES, env_name, is_settings_variable
from lakestream.config.loading import DEFAULT_CONFIG_FILE, load_settings
from lakestream.config.models import (
    CLIENT_CONFIG,
    SECRET_KEYS,
    KafkaSettings,
    LakeSettings,
    MetricsSettings,
    QualitySettings,
    S3Settings,
    Settings,
    WeatherSettings,
    is_secret_client_property,
    setting_keys,
    value_at,
)

__all__ = [
    "CLIENT_CONFIG",
    "DEFAULT_CONFIG_FILE",
    "ENV_ALIASES",
    "SECRET_KEYS",
    "KafkaSettings",
    "LakeSettings",
    "MetricsSettings",
    "QualitySettings",
    "S3Settings",
    "Settings",
    "WeatherSettings",
    "env_name",
    "is_secret_client_property",
    "is_settings_variable",
    "load_settings",
    "setting_keys",
    "value_at",
]

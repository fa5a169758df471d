"""Operator's settings: config.toml, overridden by the environment; secrets only from it.

Lookup: --config PATH, else $DISPATCH_CONFIG, else ./config.toml (optional: the embedded
defaults run without one). Any key can be set as DISPATCH_<SECTION>__<KEY>
(DISPATCH_SMTP__PORT=2525); $DISPATCH_DATABASE_URL sets the database URL.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispatch.errors import Refused

ENV_PREFIX = "DISPATCH_"
SECRET_WORDS = ("password", "secret", "token", "aes_key", "api_key")


@dataclass
class DatabaseConfig:
    url: str = "sqlite:///var/dispatch.db"
    busy_timeout_seconds: float = 30.0  # SQLite: how long a write waits for another's lock


@dataclass
class WebConfig:
    listen: str = "127.0.0.1:8080"
    base_url: str = "http://127.0.0.1:8080"


@dataclass
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 2525
    security: str = "none"  # none | starttls | tls
    username: str = ""
    from_: str = "许昌竞争情报快递 <bulletin@localhost>"
    reply_domain: str = "localhost"
    concurrency: int = 4
    rate_per_minute: int = 600
    timeout_seconds: float = 30.0
    tls_ca_file: str = ""  # a private CA to trust instead of the system's
    tls_verify: bool = True  # false only for a mail catcher on loopback


@dataclass
class ImapConfig:
    host: str = "127.0.0.1"
    port: int = 993
    security: str = "tls"
    username: str = ""
    mailbox: str = "INBOX"


@dataclass
class WecomConfig:
    enabled: bool = False
    corp_id: str = ""
    agent_id: int = 0
    api_base_url: str = "https://qyapi.weixin.qq.com"
    message_type: str = "news"  # news | textcard | markdown


@dataclass
class ScheduleConfig:
    tick_seconds: int = 30
    max_lateness_hours: float = 24.0


@dataclass
class DeliveryConfig:
    batch_size: int = 50
    lease_seconds: float = 120.0
    idle_seconds: float = 2.0
    retry_horizon_hours: float = 48.0
    retry_base_seconds: float = 60.0


@dataclass
class TaggingConfig:
    rules: str = "rules/industries.toml"


@dataclass
class PathsConfig:
    templates: str = "templates"
    recipients: str = "recipients"


@dataclass
class Secrets:
    """From the environment only; never printed (repr hides them)."""

    smtp_password: str = field(default="", repr=False)
    imap_password: str = field(default="", repr=False)
    wecom_secret: str = field(default="", repr=False)
    wecom_token: str = field(default="", repr=False)
    wecom_aes_key: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Secrets:
        return cls(
            **{f.name: env.get(ENV_PREFIX + f.name.upper(), "") for f in dataclasses.fields(cls)}
        )


@dataclass
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    web: WebConfig = field(default_factory=WebConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    imap: ImapConfig = field(default_factory=ImapConfig)
    wecom: WecomConfig = field(default_factory=WecomConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    tagging: TaggingConfig = field(default_factory=TaggingConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    secrets: Secrets = field(default_factory=Secrets, repr=False)
    # Relative paths in the file are relative to the file's folder.
    base_dir: Path = field(default_factory=Path.cwd)
    source: Path | None = None

    def path(self, relative: str) -> Path:
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    @property
    def database_url(self) -> str:
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and url != prefix + ":memory:":
            db_path = url[len(prefix):]
            if not Path(db_path).is_absolute():
                return prefix + str(self.path(db_path))
        return url


def _key_name(f: dataclasses.Field) -> str:
    return f.name.rstrip("_")  # `from_` is `from` in the file


def _coerce(value: Any, typ: type, where: str) -> Any:
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
    elif typ is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif typ is str and isinstance(value, str):
        return value
    raise Refused(f"{where}: expected {typ.__name__}, got {value!r}")


_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def _apply(section: str, values: Mapping[str, Any], cfg: Config, where: str) -> None:
    section_obj = getattr(cfg, section)
    fields = {_key_name(f): f for f in dataclasses.fields(section_obj)}
    for key, value in values.items():
        if any(word in key.lower() for word in SECRET_WORDS):
            raise Refused(
                f"{where}: '{key}' is a secret and is not read from here; "
                f"set ${ENV_PREFIX}{section.upper()}_{key.upper()} in the environment"
            )
        if key not in fields:
            raise Refused(f"{where}: unknown key '{key}' (known: {', '.join(sorted(fields))})")
        f = fields[key]
        setattr(section_obj, f.name, _coerce(value, _TYPES[str(f.type)], f"{where}.{key}"))


# Keys whose value must be one of a few words.
CHOICES = {
    ("smtp", "security"): ("none", "starttls", "tls"),
    ("imap", "security"): ("none", "starttls", "tls"),
    ("wecom", "message_type"): ("news", "textcard", "markdown"),
}

SECTIONS = (
    "database", "web", "smtp", "imap", "wecom", "schedule", "delivery", "tagging", "paths",
)


def load(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Build the configuration. Raises Refused naming the file and key on bad input."""
    env = os.environ if env is None else env
    cfg = Config()
    chosen = path or env.get(ENV_PREFIX + "CONFIG")
    file = Path(chosen) if chosen else Path("config.toml")
    if file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise Refused(f"{file}: not valid TOML: {exc}") from exc
        for name, values in data.items():
            if name not in SECTIONS or not isinstance(values, dict):
                raise Refused(f"{file}: unknown section [{name}] (known: {', '.join(SECTIONS)})")
            _apply(name, values, cfg, f"{file} [{name}]")
        cfg.base_dir = file.resolve().parent
        cfg.source = file.resolve()
    elif chosen:
        raise Refused(f"{file}: config file not found")

    for var, value in env.items():
        if not var.startswith(ENV_PREFIX) or "__" not in var:
            continue
        section, _, key = var[len(ENV_PREFIX):].lower().partition("__")
        if section not in SECTIONS:
            raise Refused(f"${var}: unknown section '{section}'")
        _apply(section, {key: value}, cfg, f"${var}")
    if env.get(ENV_PREFIX + "DATABASE_URL"):
        cfg.database.url = env[ENV_PREFIX + "DATABASE_URL"]
    cfg.secrets = Secrets.from_env(env)
    for (section, key), allowed in CHOICES.items():
        value = getattr(getattr(cfg, section), key)
        if value not in allowed:
            raise Refused(
                f"[{section}] {key} = {value!r} ({cfg.source or 'environment'}): "
                f"must be one of {', '.join(allowed)}"
            )
    return cfg

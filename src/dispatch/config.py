"""Operator's settings: config.toml, overridden by the environment; secrets only from it.

Lookup: --config PATH, else $DISPATCH_CONFIG, else ./config.toml (optional: the embedded
defaults run without one). Any key can be set as DISPATCH_<SECTION>__<KEY>
(DISPATCH_SMTP__PORT=2525); $DISPATCH_DATABASE_URL sets the database URL.

Relative paths are resolved from the config file's folder (the folder of the path given,
a symlink not followed), never from the working folder. Without a config file that
folder is the per-user instance folder (user_instance_dir). Templates, rules and the
reader-list folder default to the packaged copies (dispatch.defaults).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dispatch import defaults
from dispatch.errors import Refused
from dispatch.masthead import BULLETIN

ENV_PREFIX = "DISPATCH_"
# How a mail connection is secured: in clear, STARTTLS after connecting, or TLS from the start.
SECURITY_MODES = ("none", "starttls", "tls")
SECRET_WORDS = ("password", "secret", "token", "aes_key", "api_key")


@dataclass
class DatabaseConfig:
    # With a password only from $DISPATCH_DATABASE_URL; kept out of repr for that reason.
    url: str = field(default="sqlite:///var/dispatch.db", repr=False)
    busy_timeout_seconds: float = 30.0  # SQLite: how long a write waits for another's lock


@dataclass
class WebConfig:
    listen: str = "127.0.0.1:8080"
    base_url: str = "http://127.0.0.1:8080"
    # Peers whose X-Forwarded-For/-Proto are believed (addresses or networks); none by default.
    trusted_proxies: list[str] = field(default_factory=list)


@dataclass
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 2525
    security: str = "none"  # one of SECURITY_MODES
    username: str = ""
    from_: str = f"{BULLETIN} <bulletin@localhost>"
    reply_domain: str = "localhost"
    concurrency: int = 4
    rate_per_minute: int = 600
    timeout_seconds: float = 30.0
    tls_ca_file: str = ""  # a private CA to trust instead of the system's
    tls_verify: bool = True  # false only for a mail catcher on loopback


@dataclass
class ImapConfig:
    # Off until configured: `dispatch run` polls the mailbox only when enabled.
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 993
    security: str = "tls"
    username: str = ""
    mailbox: str = "INBOX"
    # Where a message goes once handled: nothing is read twice, nothing is deleted.
    processed_mailbox: str = "Processed"
    poll_seconds: int = 60
    timeout_seconds: float = 30.0
    tls_ca_file: str = ""
    tls_verify: bool = True


@dataclass
class TrackingConfig:
    # An event (open, click, web read) this soon after the message was handed over is a
    # machine's (a security gateway or an image proxy fetching ahead), counted apart.
    machine_open_seconds: float = 10.0


@dataclass
class FeedbackConfig:
    # Hard bounces in a row after which a reader's email is suspended (staff lift it).
    bounce_limit: int = 3


@dataclass
class WecomConfig:
    enabled: bool = False
    corp_id: str = ""
    agent_id: int = 0
    api_base_url: str = "https://qyapi.weixin.qq.com"
    message_type: str = "news"  # news | textcard | markdown | template_card
    # Each reader's links carry their delivery's token (opens, clicks, votes, 调整关注).
    # False: no token and no greeting, so readers of one variant share one call, and
    # links lead to the issue's own pages (/i/KEY); nothing is tracked.
    personal_links: bool = True
    # Calls to message/send per minute, across the process (0: no cap).
    rate_per_minute: int = 600
    timeout_seconds: float = 10.0
    # Minutes of the hour no message is sent in: WeChat Work's documentation warns of
    # congestion on the hour and the half hour.
    quiet_minutes: list[int] = field(default_factory=lambda: [0, 30])


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


def _packaged(relative: str) -> Callable[[], str]:
    return lambda: str(defaults.path(relative))


@dataclass
class TaggingConfig:
    rules: str = field(default_factory=_packaged(defaults.RULES))


@dataclass
class PathsConfig:
    templates: str = field(default_factory=_packaged(defaults.TEMPLATES))
    recipients: str = field(default_factory=_packaged(defaults.RECIPIENTS))


@dataclass
class Secrets:
    """From the environment only; never printed (repr hides them)."""

    smtp_password: str = field(default="", repr=False)
    imap_password: str = field(default="", repr=False)
    wecom_secret: str = field(default="", repr=False)
    wecom_token: str = field(default="", repr=False)
    wecom_aes_key: str = field(default="", repr=False)
    # Signs the forms of the reader pages (and staff sessions); when unset, a random key
    # is made once and kept in the database (dispatch.track.keys).
    secret_key: str = field(default="", repr=False)

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
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    tagging: TaggingConfig = field(default_factory=TaggingConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    secrets: Secrets = field(default_factory=Secrets, repr=False)
    # Relative paths in the file are relative to the file's folder.
    base_dir: Path = field(default_factory=lambda: user_instance_dir(os.environ))
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


def user_instance_dir(env: Mapping[str, str]) -> Path:
    """Where dispatch keeps its data when no config file is used: per user, not per folder."""
    base = env.get("XDG_DATA_HOME")
    try:
        root = Path(base) if base else Path.home() / ".local" / "share"
    except RuntimeError as exc:  # no HOME and no passwd entry
        raise Refused(
            "没有配置文件，也找不到用户主目录来存放数据：请用 --config 指定配置文件"
            "（dispatch init 文件夹 可以生成一份）"
        ) from exc
    return root / "dispatch"


def _key_name(f: dataclasses.Field[Any]) -> str:
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
    elif typ is _IntList:
        # A TOML array of integers, or "0,30" from the environment.
        items = value.split(",") if isinstance(value, str) else value
        if isinstance(items, list):
            try:
                return [_coerce(v.strip() if isinstance(v, str) else v, int, where) for v in items
                        if not isinstance(v, str) or v.strip()]
            except Refused:
                pass
    elif typ is list:
        # A TOML array of strings, or a comma-separated string from the environment.
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
    raise Refused(f"{where}：应为{_TYPE_WORDS[typ]}，实际是 {value!r}")


class _IntList(list[int]):
    """The type word of a list[int] key (the field's annotation is a string here)."""


_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list[str]": list,
          "list[int]": _IntList}
_TYPE_WORDS = {str: "文字", int: "整数", float: "数字", bool: "true 或 false", list: "文字列表",
               _IntList: "整数列表"}


def _apply(section: str, values: Mapping[str, Any], cfg: Config, where: str) -> None:
    section_obj = getattr(cfg, section)
    fields = {_key_name(f): f for f in dataclasses.fields(section_obj)}
    for key, value in values.items():
        if any(word in key.lower() for word in SECRET_WORDS):
            raise Refused(
                f"{where}：'{key}' 是密钥，不从这里读取；"
                f"请在环境变量 ${ENV_PREFIX}{section.upper()}_{key.upper()} 中设置"
            )
        if key not in fields:
            raise Refused(f"{where}：没有 '{key}' 这一项（可用：{', '.join(sorted(fields))}）")
        f = fields[key]
        setattr(section_obj, f.name, _coerce(value, _TYPES[str(f.type)], f"{where}.{key}"))


def _refuse_url_passwords(section: str, values: Mapping[str, Any], where: str) -> None:
    """A `user:password@` in a URL is a secret like any other: the file may not hold it."""
    for key, value in values.items():
        if not isinstance(value, str) or "://" not in value:
            continue
        try:
            password = urlsplit(value).password
        except ValueError:
            continue
        if not password:
            continue
        if (section, key) == ("database", "url"):
            hint = (
                f"请把带密码的网址放进环境变量 ${ENV_PREFIX}DATABASE_URL，"
                "文件里删掉这一项或只留不带密码的网址"
            )
        else:
            hint = "请去掉网址里的密码（密码只从环境变量读取）"
        raise Refused(f"{where} {key}：网址里带着密码，密码不能写在配置文件里；{hint}")


# Keys whose value must be one of a few words.
CHOICES = {
    ("smtp", "security"): SECURITY_MODES,
    ("imap", "security"): SECURITY_MODES,
    ("wecom", "message_type"): ("news", "textcard", "markdown", "template_card"),
}

SECTIONS = (
    "database", "web", "smtp", "imap", "wecom", "schedule", "delivery", "tracking", "feedback",
    "tagging", "paths",
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
        except UnicodeDecodeError as exc:
            raise Refused(f"{file}：不是 UTF-8 编码的文本，请存为 UTF-8") from exc
        except tomllib.TOMLDecodeError as exc:
            # tomllib says where only inside its English message: "… (at line 3, column 7)".
            # Its words are English: only the place is passed on.
            at = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
            place = f"{file}:{at[1]}" if at else str(file)
            column = f"第 {at[2]} 列附近" if at else ""
            raise Refused(
                f"{place}：不是有效的 TOML，{column}写法不对"
                "（常见原因：文字没加英文双引号、引号或方括号没配对、同一项写了两次）"
            ) from exc
        for name, values in data.items():
            if name not in SECTIONS or not isinstance(values, dict):
                raise Refused(f"{file}：没有 [{name}] 这一节（可用：{', '.join(SECTIONS)}）")
            _refuse_url_passwords(name, values, f"{file} [{name}]")
            _apply(name, values, cfg, f"{file} [{name}]")
        # abspath, not resolve: a symlinked config.toml (the repository's) works from
        # the folder it was named in, where its instance is.
        cfg.source = Path(os.path.abspath(file))
        cfg.base_dir = cfg.source.parent
    elif chosen:
        raise Refused(f"{file}：配置文件不存在")
    else:
        cfg.base_dir = user_instance_dir(env)

    for var, value in env.items():
        if not var.startswith(ENV_PREFIX) or "__" not in var:
            continue
        section, _, key = var[len(ENV_PREFIX):].lower().partition("__")
        if section not in SECTIONS:
            raise Refused(f"${var}：没有 [{section}] 这一节（可用：{', '.join(SECTIONS)}）")
        _apply(section, {key: value}, cfg, f"${var}")
    if env.get(ENV_PREFIX + "DATABASE_URL"):
        cfg.database.url = env[ENV_PREFIX + "DATABASE_URL"]
    cfg.secrets = Secrets.from_env(env)
    _check_proxies(cfg)
    for (section, key), allowed in CHOICES.items():
        value = getattr(getattr(cfg, section), key)
        if value not in allowed:
            raise Refused(
                f"[{section}] {key} = {value!r}（{cfg.source or '环境变量'}）："
                f"只能是 {', '.join(allowed)} 之一"
            )
    return cfg


def _check_proxies(cfg: Config) -> None:
    # uvicorn would take a malformed entry as a literal that never matches: refuse it here.
    for entry in cfg.web.trusted_proxies:
        try:
            ipaddress.ip_network(entry)
        except ValueError:
            raise Refused(
                f"{cfg.source or '环境变量'}：[web] trusted_proxies 中的“{entry}”不是 IP 地址或网段"
                "（例如 127.0.0.1、10.0.0.0/8；网段的主机位要为 0）"
            ) from None

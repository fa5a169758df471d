"""Operator's settings: file, environment, and secrets kept out of the file."""

from __future__ import annotations

import pytest

from dispatch.config import load
from dispatch.errors import Refused

REPO_CONFIG = __import__("conftest").REPO / "config.toml"


def test_shipped_config_is_the_embedded_defaults():
    assert load(REPO_CONFIG, env={}) == load(None, env={"DISPATCH_CONFIG": str(REPO_CONFIG)})
    cfg = load(REPO_CONFIG, env={})
    assert cfg.database_url == f"sqlite:///{REPO_CONFIG.parent / 'var/dispatch.db'}"
    assert cfg.wecom.api_base_url == "https://qyapi.weixin.qq.com"


def test_environment_overrides_any_key(tmp_path):
    cfg = load(
        REPO_CONFIG,
        env={
            "DISPATCH_SMTP__PORT": "2526",
            "DISPATCH_SMTP__SECURITY": "starttls",
            "DISPATCH_WECOM__ENABLED": "true",
            "DISPATCH_SCHEDULE__MAX_LATENESS_HOURS": "6",
            "DISPATCH_SMTP__FROM": "情报所 <news@example.gov.cn>",
            "DISPATCH_DATABASE_URL": "postgresql://u@db/dispatch",
        },
    )
    assert cfg.smtp.port == 2526 and cfg.smtp.security == "starttls"
    assert cfg.wecom.enabled is True and cfg.schedule.max_lateness_hours == 6.0
    assert cfg.smtp.from_ == "情报所 <news@example.gov.cn>"
    assert cfg.database_url == "postgresql://u@db/dispatch"


def test_secrets_come_from_the_environment_and_are_never_shown():
    cfg = load(REPO_CONFIG, env={"DISPATCH_SMTP_PASSWORD": "hunter2", "DISPATCH_WECOM_SECRET": "s3"})
    assert cfg.secrets.smtp_password == "hunter2" and cfg.secrets.wecom_secret == "s3"
    assert "hunter2" not in repr(cfg) and "s3" not in repr(cfg.secrets)


def test_a_secret_in_the_file_is_refused(tmp_path):
    f = tmp_path / "config.toml"
    f.write_text('[smtp]\npassword = "hunter2"\n', encoding="utf-8")
    with pytest.raises(Refused) as e:
        load(f, env={})
    assert str(f) in str(e.value) and "DISPATCH_SMTP_PASSWORD" in str(e.value)
    assert "hunter2" not in str(e.value)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('[smtp]\nprot = 25\n', ["[smtp]", "prot"]),
        ('[smpt]\nport = 25\n', ["[smpt]"]),
        ('[smtp]\nport = "many"\n', ["smtp", "port", "应为整数", "'many'"]),
        ("[smtp\n", [":1：不是有效的 TOML"]),
    ],
)
def test_bad_config_names_file_and_key(tmp_path, content, words):
    f = tmp_path / "config.toml"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(Refused) as e:
        load(f, env={})
    assert str(f) in str(e.value)
    for w in words:
        assert w in str(e.value)


def test_bad_environment_value_is_named():
    with pytest.raises(Refused) as e:
        load(REPO_CONFIG, env={"DISPATCH_SMTP__PORT": "twenty-five"})
    assert "DISPATCH_SMTP__PORT" in str(e.value)


def test_missing_named_config_is_refused(tmp_path):
    with pytest.raises(Refused, match="配置文件不存在"):
        load(tmp_path / "nope.toml", env={})


def test_a_word_outside_the_choices_is_refused(tmp_path):
    f = tmp_path / "config.toml"
    f.write_text('[smtp]\nsecurity = "ssl"\n', encoding="utf-8")
    with pytest.raises(Refused) as e:
        load(f, env={})
    assert "security" in str(e.value) and "starttls" in str(e.value) and "只能是" in str(e.value)


def test_a_password_in_the_database_url_in_the_file_is_refused(tmp_path):
    f = tmp_path / "config.toml"
    f.write_text('[database]\nurl = "postgresql://postgres:hunter2@db.example:5432/dispatch"\n',
                 encoding="utf-8")
    with pytest.raises(Refused) as e:
        load(f, env={})
    message = str(e.value)
    assert str(f) in message and "[database] url" in message and "密码" in message
    assert "$DISPATCH_DATABASE_URL" in message
    assert "hunter2" not in message


def test_a_password_in_any_url_in_the_file_is_refused(tmp_path):
    f = tmp_path / "config.toml"
    f.write_text('[web]\nbase_url = "https://staff:hunter2@news.example.gov.cn"\n', encoding="utf-8")
    with pytest.raises(Refused) as e:
        load(f, env={})
    assert "[web] base_url" in str(e.value) and "密码" in str(e.value)
    assert "hunter2" not in str(e.value)


def test_a_url_without_password_in_the_file_is_fine(tmp_path):
    f = tmp_path / "config.toml"
    f.write_text('[database]\nurl = "postgresql://postgres@db.example:5432/dispatch"\n'
                 '[smtp]\nfrom = "情报所 <news@example.gov.cn>"\n', encoding="utf-8")
    assert load(f, env={}).database_url == "postgresql://postgres@db.example:5432/dispatch"


def test_a_database_url_with_password_from_the_environment_is_accepted_and_not_shown(tmp_path):
    f = tmp_path / "config.toml"
    f.write_text('[database]\nurl = "postgresql://postgres@db.example:5432/dispatch"\n', encoding="utf-8")
    url = "postgresql://postgres:hunter2@db.example:5432/dispatch"
    cfg = load(f, env={"DISPATCH_DATABASE_URL": url})
    assert cfg.database_url == url
    assert "hunter2" not in repr(cfg)

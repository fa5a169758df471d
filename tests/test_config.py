"""Operator's settings: file, environment, and secrets kept out of the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatch import defaults
from dispatch.config import SECTIONS, load
from dispatch.errors import Refused

REPO_CONFIG = __import__("conftest").REPO / "config.toml"


def test_shipped_config_is_the_embedded_defaults(tmp_path, monkeypatch):
    assert load(REPO_CONFIG, env={}) == load(None, env={"DISPATCH_CONFIG": str(REPO_CONFIG)})
    cfg = load(REPO_CONFIG, env={})
    # The repository's config.toml is a symlink to the packaged one; its paths are
    # resolved from where it was named, the checkout, whose var/ the demo uses.
    assert REPO_CONFIG.is_symlink()
    assert cfg.database_url == f"sqlite:///{REPO_CONFIG.parent / 'var/dispatch.db'}"
    assert cfg.wecom.api_base_url == "https://qyapi.weixin.qq.com"
    monkeypatch.chdir(tmp_path)  # no ./config.toml here
    embedded = load(None, env={"XDG_DATA_HOME": str(tmp_path / "data")})
    for section in SECTIONS:
        if section not in ("tagging", "paths"):
            assert getattr(cfg, section) == getattr(embedded, section), section
    # The shipped file names the instance's own copies; the embedded defaults use the
    # packaged ones. In the checkout they are the same files.
    for value, packaged in ((cfg.paths.templates, defaults.TEMPLATES),
                            (cfg.tagging.rules, defaults.RULES),
                            (cfg.paths.recipients, defaults.RECIPIENTS)):
        assert cfg.path(value).resolve() == defaults.path(packaged).resolve()
    assert embedded.paths.templates == str(defaults.path(defaults.TEMPLATES))
    assert embedded.tagging.rules == str(defaults.path(defaults.RULES))


def test_relative_paths_are_resolved_from_the_config_folder_not_the_working_one(
    tmp_path, monkeypatch
):
    home = tmp_path / "srv" / "dispatch"
    home.mkdir(parents=True)
    f = home / "config.toml"
    f.write_text(
        '[database]\nurl = "sqlite:///var/d.db"\n[smtp]\ntls_ca_file = "ca.pem"\n'
        '[tagging]\nrules = "r/x.toml"\n[paths]\ntemplates = "tpl"\nrecipients = "../lists"\n',
        encoding="utf-8",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for cfg in (load("../srv/dispatch/config.toml", env={}),
                load(None, env={"DISPATCH_CONFIG": "../srv/dispatch/config.toml"})):
        assert cfg.database_url == f"sqlite:///{home / 'var' / 'd.db'}"
        assert cfg.path(cfg.tagging.rules) == home / "r" / "x.toml"
        assert cfg.path(cfg.paths.templates) == home / "tpl"
        assert cfg.path(cfg.paths.recipients) == home / ".." / "lists"
        assert cfg.path(cfg.smtp.tls_ca_file) == home / "ca.pem"


def test_a_symlinked_config_works_from_the_folder_it_is_named_in(tmp_path):
    real = tmp_path / "shared" / "config.toml"
    real.parent.mkdir()
    real.write_text('[paths]\ntemplates = "templates"\n', encoding="utf-8")
    link = tmp_path / "instance" / "config.toml"
    link.parent.mkdir()
    link.symlink_to(real)
    cfg = load(link, env={})
    assert cfg.path(cfg.paths.templates) == tmp_path / "instance" / "templates"
    assert cfg.database_url == f"sqlite:///{tmp_path / 'instance' / 'var' / 'dispatch.db'}"


def test_without_a_config_file_data_goes_to_the_user_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load(None, env={"XDG_DATA_HOME": str(tmp_path / "data")})
    assert cfg.source is None
    assert cfg.database_url == f"sqlite:///{tmp_path / 'data' / 'dispatch' / 'var' / 'dispatch.db'}"
    cfg = load(None, env={})
    assert cfg.base_dir == Path.home() / ".local" / "share" / "dispatch"


def test_trusted_proxies_from_the_file_and_the_environment(tmp_path):
    assert load(REPO_CONFIG, env={}).web.trusted_proxies == []
    f = tmp_path / "config.toml"
    f.write_text('[web]\ntrusted_proxies = ["127.0.0.1", "10.0.0.0/8", "::1"]\n', encoding="utf-8")
    assert load(f, env={}).web.trusted_proxies == ["127.0.0.1", "10.0.0.0/8", "::1"]
    cfg = load(f, env={"DISPATCH_WEB__TRUSTED_PROXIES": "192.0.2.1, 198.51.100.0/24"})
    assert cfg.web.trusted_proxies == ["192.0.2.1", "198.51.100.0/24"]


@pytest.mark.parametrize("entry", ["nginx.local", "10.0.0.1/8", "300.1.1.1", "*"])
def test_a_trusted_proxy_that_is_no_address_or_network_is_refused(tmp_path, entry):
    f = tmp_path / "config.toml"
    f.write_text(f'[web]\ntrusted_proxies = ["127.0.0.1", "{entry}"]\n', encoding="utf-8")
    with pytest.raises(Refused) as e:
        load(f, env={})
    assert str(f) in str(e.value) and "trusted_proxies" in str(e.value) and entry in str(e.value)


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

"""`dispatch init` and the start-time check of what a config names (in-process CLI;
tests/test_install.py does the same from an installed copy)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO
from typer.testing import CliRunner

from dispatch import defaults
from dispatch.cli import app

PACKAGED = defaults.path(".")


def cli(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def instance_files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_init_makes_an_instance_of_the_packaged_files(tmp_path):
    inst = tmp_path / "dispatch"
    r = cli("init", str(inst))
    assert r.exit_code == 0, r.stdout + r.stderr
    files = instance_files(inst)
    assert set(files) == {
        "config.toml", "rules/industries.toml", "recipients/README.md", "recipients/sample.csv",
        "samples/issue-sample.txt",
        *(f"templates/{p.name}" for p in (PACKAGED / "templates").iterdir()),
    }
    for rel, content in files.items():
        assert content == (PACKAGED / rel).read_bytes(), rel
    assert (inst / "var").is_dir() and not any((inst / "var").iterdir())
    assert f"已在 {inst} 建好实例文件夹" in r.stdout
    assert f"dispatch --config {inst / 'config.toml'} recipients import" in r.stdout
    # The instance works as it is: its config names its own copies, and they exist.
    r = cli("--config", str(inst / "config.toml"), "db", "info")
    assert r.exit_code == 0 and f"sqlite:///{inst / 'var' / 'dispatch.db'}" in r.stdout


def test_init_refuses_to_overwrite_unless_forced(tmp_path):
    inst = tmp_path / "dispatch"
    cli("init", str(inst))
    edited = inst / "templates" / "email.html.j2"
    edited.write_text("staff's own", encoding="utf-8")
    (inst / "recipients" / "名单.xlsx").write_bytes(b"a list staff keep")
    (inst / "config.toml").unlink()  # one file gone: still nothing is written
    r = cli("init", str(inst))
    assert r.exit_code == 1
    # The first existing files by name are named, then how many in all.
    assert "已存在" in r.stderr and "templates/_" in r.stderr and "--force" in r.stderr
    assert "个文件已存在" in r.stderr
    assert edited.read_text(encoding="utf-8") == "staff's own"
    assert not (inst / "config.toml").exists()

    r = cli("init", str(inst), "--force")
    assert r.exit_code == 0, r.stderr
    assert edited.read_bytes() == (PACKAGED / "templates" / "email.html.j2").read_bytes()
    assert (inst / "config.toml").is_file()
    assert (inst / "recipients" / "名单.xlsx").read_bytes() == b"a list staff keep"
    assert "覆盖" in r.stdout


def test_init_into_a_file_is_refused(tmp_path):
    target = tmp_path / "taken"
    target.write_text("x", encoding="utf-8")
    r = cli("init", str(target))
    assert r.exit_code == 1 and "不是文件夹" in r.stderr


def _config(tmp_path: Path, body: str) -> Path:
    (tmp_path / "var").mkdir(exist_ok=True)
    f = tmp_path / "config.toml"
    f.write_text(body, encoding="utf-8")
    return f


@pytest.mark.parametrize(
    ("body", "key", "missing"),
    [
        ('[paths]\ntemplates = "templaets"\n', "[paths] templates", "templaets"),
        ('[tagging]\nrules = "rules/industry.toml"\n', "[tagging] rules", "rules/industry.toml"),
        ('[paths]\nrecipients = "lists"\n', "[paths] recipients", "lists"),
        ('[smtp]\ntls_ca_file = "ca.pem"\n', "[smtp] tls_ca_file", "ca.pem"),
        ('[database]\nurl = "sqlite:///data/dispatch.db"\n', "[database] url", "data"),
    ],
)
def test_a_path_the_config_names_that_is_missing_is_refused_at_start(tmp_path, body, key, missing):
    f = _config(tmp_path, body)
    for command in (["db", "info"], ["run"]):  # run: before anything listens
        r = cli("--config", str(f), *command)
        assert r.exit_code == 1, r.stdout
        assert str(f) in r.stderr and key in r.stderr and str(tmp_path / missing) in r.stderr
        assert "不存在" in r.stderr
    assert not (tmp_path / "data").exists()


def test_a_config_naming_no_paths_uses_the_packaged_templates_and_rules(tmp_path):
    f = _config(tmp_path, "[smtp]\nport = 2526\n")
    r = cli("--config", str(f), "issues", "ingest", str(REPO / "samples" / "issue-sample.txt"))
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "var" / "dispatch.db").is_file()


def test_without_a_config_the_data_is_the_users_not_the_working_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("db", "info", env={"XDG_DATA_HOME": str(tmp_path / "data"), "DISPATCH_CONFIG": ""})
    assert r.exit_code == 0, r.stderr
    assert f"sqlite:///{tmp_path / 'data' / 'dispatch' / 'var' / 'dispatch.db'}" in r.stdout
    assert not (tmp_path / "var").exists()


def test_a_broken_rule_file_is_one_line_not_a_traceback(tmp_path):
    (tmp_path / "rules.toml").write_text("[industries\n", encoding="utf-8")
    f = _config(tmp_path, '[tagging]\nrules = "rules.toml"\n')
    r = cli("--config", str(f), "issues", "ingest", str(REPO / "samples" / "issue-sample.txt"))
    assert r.exit_code == 1
    assert str(tmp_path / "rules.toml") in r.stderr and "TOML" in r.stderr


def test_an_older_instance_lacking_a_newer_template_falls_back_to_the_packaged_one(tmp_path):
    """An instance made before the vote and preference pages existed keeps its own edited
    templates and still renders the new pages (from the package), never a 500."""
    import shutil

    from dispatch.render.templates import make_environment

    own = tmp_path / "templates"
    shutil.copytree(PACKAGED / "templates", own)
    (own / "web_vote.html.j2").unlink()
    (own / "web_preferences.html.j2").unlink()
    (own / "web_error.html.j2").write_text("本所自己的错误页 {{ status }}", encoding="utf-8")
    env = make_environment(own)
    assert env.get_template("web_error.html.j2").render(status=404) == "本所自己的错误页 404"
    assert env.get_template("web_vote.html.j2").filename.startswith(str(PACKAGED))
    assert env.get_template("web_preferences.html.j2").filename.startswith(str(PACKAGED))

"""The operator's case: dispatch installed (not editable) in a fresh venv, an instance
made with `dispatch init`, and every command and reader page used from `/` with nothing
but --config (or $DISPATCH_CONFIG), as systemd or a container runs it. Also the deploy/
units, checked against that installation."""

from __future__ import annotations

import csv
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path
from typing import TypeVar

import pytest
from conftest import REPO
from smtp_servers import MailServer, free_port
from waiting import wait_for

pytestmark = pytest.mark.slow

DEPLOY = REPO / "deploy"
ROOT = Path("/")
T = TypeVar("T")


class Installed:
    """The `dispatch` of a fresh venv, run as a user would: from `/`, a clean environment."""

    def __init__(self, venv: Path, home: Path):
        self.venv = venv
        self.bin = venv / "bin" / "dispatch"
        # No PYTHONPATH (it would bring the checkout's src back), no DISPATCH_* of the
        # developer's shell, and a HOME of our own to show the per-user folder stays unused.
        self.env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}

    def __call__(self, *args: str, env: dict[str, str] | None = None,
                 ok: bool = True) -> subprocess.CompletedProcess:
        run = subprocess.run(
            [str(self.bin), *args], cwd=ROOT, env={**self.env, **(env or {})},
            capture_output=True, text=True, timeout=120,
        )
        if ok:
            assert run.returncode == 0, f"dispatch {' '.join(args)} → {run.returncode}\n{run.stdout}\n{run.stderr}"
        assert "Traceback" not in run.stderr, run.stderr
        return run


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    root = tmp_path_factory.mktemp("install")
    # What a source distribution holds, nothing else: not the checkout's top-level
    # templates/ or rules/, not its var/; the package must carry what it needs.
    tree = root / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tree / name)
    shutil.copytree(REPO / "src", tree / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_USER")}
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", str(tree)],
        env=pip_env, capture_output=True, text=True, timeout=600,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    shutil.rmtree(tree)  # nothing may be read from the tree it was built from
    home = root / "home"
    home.mkdir()
    installed = Installed(venv, home)
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import dispatch; print(dispatch.__file__)"],
        cwd=ROOT, env=installed.env, capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert where.startswith(str(venv / "lib")), where  # the installed copy, not the checkout
    return installed


def set_line(text: str, old: str, new: str) -> str:
    assert text.count(old + "\n") == 1, f"{old!r} not once in the shipped config.toml"
    return text.replace(old + "\n", new + "\n")


def http_get(url_base: str, path: str) -> tuple[int, dict[str, str], str]:
    host, _, port = url_base.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        headers = {k.lower(): v for k, v in resp.getheaders()}
        text = body.decode("utf-8") if "text/" in headers.get("content-type", "") else ""
        return resp.status, headers, text
    finally:
        conn.close()


def healthy(base_url: str) -> bool:
    try:
        return http_get(base_url, "/healthz")[0] == 200
    except OSError:
        return False


SHIPPED = ("config.toml", "templates/email.html.j2", "templates/web_error.html.j2",
           "rules/industries.toml", "recipients/README.md", "recipients/sample.csv",
           "samples/issue-sample.txt")
NOT_FOUND = "页面不存在"  # the 404 page's title (web/pages.py)


@pytest.mark.parametrize("how", ["--config", "DISPATCH_CONFIG"])
def test_installed_dispatch_serves_an_instance_from_the_root_folder(installed, tmp_path, how):
    d = installed
    inst = tmp_path / "srv" / "dispatch"

    # -- dispatch init ----------------------------------------------------------------
    made = d("init", str(inst))
    for rel in SHIPPED:
        assert (inst / rel).is_file(), rel
        assert rel.split("/")[0].removesuffix(".toml") in made.stdout
    assert (inst / "var").is_dir()
    config = inst / "config.toml"
    assert f"dispatch --config {config} recipients import {inst / 'recipients/sample.csv'}" in made.stdout
    again = d("init", str(inst), ok=False)
    assert again.returncode == 1 and "已存在" in again.stderr and "--force" in again.stderr

    mail = MailServer().start()
    web_port = free_port()
    base_url = f"http://127.0.0.1:{web_port}"
    text = config.read_text(encoding="utf-8")
    text = set_line(text, 'listen = "127.0.0.1:8080"', f'listen = "127.0.0.1:{web_port}"')
    text = set_line(text, 'base_url = "http://127.0.0.1:8080"', f'base_url = "{base_url}"')
    text = set_line(text, "port = 2525", f"port = {mail.port}")
    text = set_line(text, "tick_seconds = 30", "tick_seconds = 1")
    config.write_text(text, encoding="utf-8")

    if how == "--config":
        def dispatch(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
            return d("--config", str(config), *args, ok=ok)
        service_args, service_env = ["--config", str(config), "run"], {}
    else:
        def dispatch(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
            return d(*args, env={"DISPATCH_CONFIG": str(config)}, ok=ok)
        service_args, service_env = ["run"], {"DISPATCH_CONFIG": str(config)}

    service = None
    try:
        # -- the staff's commands ---------------------------------------------------------
        sample = inst / "recipients" / "sample.csv"
        with sample.open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
        imported = json.loads(dispatch("recipients", "import", str(sample), "--json").stdout)
        assert imported["added"] == len(rows) and not imported["errors"]

        ingested = json.loads(
            dispatch("issues", "ingest", str(inst / "samples" / "issue-sample.txt"), "--json").stdout
        )
        issue = str(ingested["id"])
        articles = [a for s in ingested["sections"] for a in s["articles"]]
        # The instance's rules tagged them: some article has an industry besides 综合.
        assert any(set(a["industries"]) - {"general"} for a in articles), articles
        shown = dispatch("issues", "show", issue).stdout
        assert articles[-1]["title"] in shown

        dispatch("issues", "finalize", issue)
        html = dispatch("preview", issue, "--recipient", "lihongmei@example.gov.cn").stdout
        assert "<html" in html and "许昌竞争情报快递" in html
        plain = dispatch("preview", issue, "--recipient", "lihongmei@example.gov.cn",
                         "--format", "text").stdout
        assert f"{base_url}/w/" in plain
        wecom = json.loads(dispatch("preview", issue, "--recipient", "ZhaoZhiQiang",
                                    "--format", "wecom").stdout)
        assert wecom["touser"] == "ZhaoZhiQiang" and wecom["news"]["articles"]
        dry = dispatch("send", issue, "--dry-run").stdout
        assert "李红梅" in dry
        assert json.loads(dispatch("status", issue, "--json").stdout)["status"] == "finalized"

        # -- the service, started from / ----------------------------------------------
        with (tmp_path / "run.log").open("w") as log:
            service = subprocess.Popen(
                [str(d.bin), *service_args], cwd=ROOT, env={**d.env, **service_env},
                stdout=log, stderr=subprocess.STDOUT,
            )

        def status() -> dict:
            return json.loads(dispatch("status", issue, "--json").stdout)

        def email_done() -> bool:
            assert service.poll() is None, (tmp_path / "run.log").read_text()
            email = status()["counts"].get("email", {})
            return bool(email) and not any(email.get(s) for s in ("queued", "sending", "retry"))

        wait_for(lambda: healthy(base_url), "/healthz")
        wait_for(email_done, "every email delivery done")
        email = status()["counts"]["email"]
        assert email["failed"] == 0 and email["sent"] == len(mail.accepted) > 0

        # -- every reader page, through the links of a message received ----------------
        message = message_from_bytes(mail.accepted[0].data, policy=policy.default)
        body = message.get_body(("plain",)).get_content()
        token = re.search(re.escape(base_url) + r"/w/([a-z2-7]+)\b", body).group(1)
        n = re.search(re.escape(base_url) + rf"/c/{token}/(\d+)\b", body).group(1)

        status_code, _, page = http_get(base_url, "/healthz")
        assert status_code == 200 and page.splitlines()[0] == "ok", page
        assert {"database: ok", "scheduler: ok", "worker: ok"} <= set(page.splitlines()), page
        status_code, _, page = http_get(base_url, f"/w/{token}")
        assert status_code == 200 and "许昌竞争情报快递" in page
        status_code, headers, _ = http_get(base_url, f"/c/{token}/{n}")
        assert status_code == 302
        article = headers["location"].removeprefix(base_url)
        assert re.fullmatch(rf"/w/{token}/a/\d+", article), headers["location"]
        status_code, _, page = http_get(base_url, article)
        assert status_code == 200 and any(a["title"] in page for a in articles)
        status_code, _, page = http_get(base_url, f"/u/{token}")
        assert status_code == 200 and "确认退订" in page
        status_code, _, page = http_get(base_url, f"/p/{token}")
        assert status_code == 200 and "接收设置" in page
        vote = re.search(re.escape(base_url) + rf"(/f/{token}/\d+/useful)\b", body).group(1)
        status_code, _, page = http_get(base_url, vote)
        # A fetch with no User-Agent is a machine's: it gets the confirmation, not a vote.
        assert status_code == 200 and "请确认您的反馈" in page
        status_code, headers, _ = http_get(base_url, f"/o/{token}.gif")  # the open pixel
        assert status_code == 200 and headers["content-type"] == "image/gif"
        # Links that lead nowhere get the 404 page, rendered from the instance's
        # templates, never a 500.
        for path in ("/w/" + "a" * 32, "/no/such/page"):
            status_code, _, page = http_get(base_url, path)
            assert status_code == 404 and NOT_FOUND in page, (path, status_code, page)

        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=120) == 0, (tmp_path / "run.log").read_text()
        assert "Traceback" not in (tmp_path / "run.log").read_text()
        service = None

        # -- after the send -------------------------------------------------------------
        assert status()["counts"]["email"]["sent"] == len(mail.accepted)
        exported = tmp_path / "readers-export.csv"
        dispatch("recipients", "export", str(exported))
        with exported.open(encoding="utf-8-sig", newline="") as f:
            assert len(list(csv.DictReader(f))) == len(rows)
        info = dispatch("db", "info").stdout
        assert f"sqlite:///{inst / 'var' / 'dispatch.db'}" in info
    finally:
        if service is not None:
            service.kill()
            service.wait(timeout=30)
        mail.stop()

    # Nothing was looked for or written relative to the working folder or HOME.
    assert not (ROOT / "var" / "dispatch.db").exists()
    assert not (Path(d.env["HOME"]) / ".local").exists()


def test_a_folder_the_config_names_but_is_missing_stops_run_at_start(installed, tmp_path):
    inst = tmp_path / "instance"
    installed("init", str(inst))
    shutil.rmtree(inst / "templates")
    run = installed("--config", str(inst / "config.toml"), "run", ok=False)
    assert run.returncode == 1
    assert "[paths] templates" in run.stderr and str(inst / "templates") in run.stderr
    assert "不存在" in run.stderr


# -- the deploy/ units --------------------------------------------------------------------


def unit_directives(text: str) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            current[key] = value
    return sections


UNITS = {"dispatch.service": "run", "dispatch-worker@.service": "worker"}
VENV_IN_UNITS = "/opt/dispatch"
INSTANCE_IN_UNITS = "/srv/dispatch"


@pytest.mark.parametrize(("unit", "command"), UNITS.items())
def test_units_run_dispatch_confined_as_its_own_user(unit, command):
    service = unit_directives((DEPLOY / unit).read_text(encoding="utf-8"))["Service"]
    assert service["User"] == "dispatch" and service["Group"] == "dispatch"
    assert service["ExecStart"] == (
        f"{VENV_IN_UNITS}/bin/dispatch --config {INSTANCE_IN_UNITS}/config.toml {command}"
    )
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == f"{INSTANCE_IN_UNITS}/var"
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"] == "/etc/dispatch/dispatch.env"
    assert service["NoNewPrivileges"] == "true"


def test_the_environment_file_holds_no_secret_and_says_mode_0600():
    text = (DEPLOY / "dispatch.env").read_text(encoding="utf-8")
    assert "-m 0600" in text
    for line in text.splitlines():
        assert not line or line.startswith("#"), line  # an example: every value commented out


def test_deploy_doc_includes_every_deploy_file_as_it_is():
    doc = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    for path in sorted(DEPLOY.iterdir()):
        assert path.read_text(encoding="utf-8").strip() in doc, f"docs/deploy.md lacks {path.name}"


def test_systemd_verifies_the_units_against_the_installed_command(installed, tmp_path):
    # scripts/system-deps installs systemd where systemd-analyze is missing.
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is needed (scripts/system-deps installs it)"
    inst = tmp_path / "instance"
    installed("init", str(inst))
    units = tmp_path / "units"
    units.mkdir()
    for unit in UNITS:
        text = (DEPLOY / unit).read_text(encoding="utf-8")
        text = text.replace(VENV_IN_UNITS, str(installed.venv)).replace(INSTANCE_IN_UNITS, str(inst))
        (units / unit).write_text(text, encoding="utf-8")
    check = subprocess.run(
        [analyze, "verify", "--man=no", str(units / "dispatch.service"),
         str(units / "dispatch-worker@1.service")],
        capture_output=True, text=True, timeout=120,
    )
    # Warnings (an unknown key, a bad value) keep exit code 0: any output is a failure.
    assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), (
        check.stdout + check.stderr
    )

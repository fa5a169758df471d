"""`scripts/demo`, run twice as a new user would: the sample readers get one copy."""

from __future__ import annotations

import email
import json
import os
import subprocess
import sys
from collections import Counter

import pytest
from conftest import REPO
from smtp_servers import free_port

pytestmark = pytest.mark.slow


def test_running_the_demo_twice_mails_each_sample_reader_once(tmp_path):
    inst = tmp_path / "inst"
    subprocess.run([sys.executable, "-m", "dispatch", "init", str(inst)], check=True,
                   capture_output=True)
    env = {
        **os.environ,
        "DISPATCH_CONFIG": str(inst / "config.toml"),
        # Ports of its own: the catcher and the web app must not meet another's.
        "DISPATCH_SMTP__PORT": str(free_port()),
        "DISPATCH_WEB__LISTEN": f"127.0.0.1:{free_port()}",
        "DISPATCH_WECOM__API_BASE_URL": f"http://127.0.0.1:{free_port()}",
    }
    env.pop("DISPATCH_DATABASE_URL", None)

    def demo() -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(REPO / "scripts" / "demo")], env=env, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    def mailed() -> Counter[str]:
        return Counter(
            email.message_from_bytes(f.read_bytes())["To"] for f in (inst / "var" / "mail").glob("*.eml")
        )

    def wecomed() -> Counter[str]:
        return Counter(
            json.loads(f.read_text(encoding="utf-8"))["touser"]
            for f in (inst / "var" / "wecom").glob("*.json")
        )

    shown = demo().stdout
    first = mailed()
    # A reader's open, web read and 有用, and a WeChat Work reader's 有用 on the card,
    # reached the report the demo ends with.
    assert "模拟读者" in shown and "模拟企业微信读者" in shown, shown
    assert "2 条反馈" in shown and "对整期（企业微信卡片按钮）：有用 1" in shown, shown
    issues = json.loads(subprocess.run(
        [sys.executable, "-m", "dispatch", "issues", "list", "--json"], env=env, check=True,
        capture_output=True, text=True).stdout)
    [issue] = issues
    status = json.loads(subprocess.run(
        [sys.executable, "-m", "dispatch", "status", str(issue["id"]), "--json"], env=env,
        check=True, capture_output=True, text=True).stdout)
    # Every email reader of the sample list got the issue, once; every WeChat Work reader
    # too, in the stand-in's folder; the issue is done.
    assert sum(first.values()) == status["counts"]["email"]["sent"] > 0
    assert set(first.values()) == {1}
    cards = wecomed()
    assert sum(cards.values()) == status["counts"]["wecom"]["sent"] > 0
    assert set(cards.values()) == {1}
    assert status["status"] == "sent", status

    again = demo()
    assert f"样刊已在期刊 {issue['id']} 中" in again.stdout
    assert mailed() == first
    assert wecomed() == cards
    assert [i["id"] for i in json.loads(subprocess.run(
        [sys.executable, "-m", "dispatch", "issues", "list", "--json"], env=env, check=True,
        capture_output=True, text=True).stdout)] == [issue["id"]]

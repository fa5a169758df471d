"""`dispatch --help` and each command's help import none of the heavy libraries: what keeps
them fast (bench/cli.py measures how fast; no test here looks at a clock)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# What a help page must not load: the database, the parsers, rendering, the services, and
# pydantic (typer's converter, replaced by dispatch.cli.coerce for the kinds we use).
HEAVY = (
    "sqlalchemy", "alembic", "pydantic", "docx", "lxml", "yaml", "premailer", "openpyxl",
    "email_validator", "jinja2", "aiosmtplib", "starlette", "uvicorn", "apscheduler",
    "wechatpy", "asyncio", "rich.table", "rich.progress", "rich.tree", "rich.markdown",
    "dispatch.runtime", "dispatch.db", "dispatch.ingest", "dispatch.render",
    "dispatch.readers.apply", "dispatch.readers.validate", "dispatch.readers.table",
    "dispatch.editorial", "dispatch.lifecycle", "dispatch.deliver", "dispatch.plan",
)

PROBE = """
import json, sys
sys.argv = ["dispatch", *sys.argv[1:]]
from dispatch.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
heavy = json.loads(HEAVY)
loaded = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))
print(json.dumps({"code": code, "loaded": loaded}), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "command",
    [
        [], ["issues"], ["recipients"], ["db"], ["init"], ["preview"], ["send"], ["run"],
        ["recipients", "list"], ["recipients", "import"], ["issues", "show"], ["db", "info"],
    ],
    ids=lambda c: " ".join(c) or "dispatch",
)
def test_help_imports_nothing_heavy(command: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.replace("HEAVY", repr(json.dumps(HEAVY))), *command,
         "--help"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    result = json.loads(done.stderr.strip().splitlines()[-1])
    assert result["code"] == 0 and done.stdout.startswith("用法：dispatch"), done.stderr
    assert result["loaded"] == []


def test_a_usage_error_imports_nothing_heavy() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.replace("HEAVY", repr(json.dumps(HEAVY))),
         "issues", "show", "abc"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    result = json.loads(done.stderr.strip().splitlines()[-1])
    assert result["code"] == 2 and "“abc”不是整数" in done.stderr
    assert result["loaded"] == []

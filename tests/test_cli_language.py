"""What staff read from the CLI's framework, `db` and `init` is Chinese; usage errors and
refusals too, with the command to run next on one line. Also tests the English detector
(tests/cli_language.py) that the other CLI tests use."""

from __future__ import annotations

import re

import pytest
from cli_language import english_words
from typer.testing import CliRunner

from dispatch.cli import app
from dispatch.cli.zh import cells

# What the CLI printed before it spoke Chinese: each must be caught.
ENGLISH = [
    "wrote preview.html (16575 bytes)",
    "error: no reader with email, WeChat Work user id or id 'nobody@example.com'",
    "邮箱“zhangsan@example”格式不正确（The part after the @-sign is not valid. It should have a period.）",
    "issue 1: 发送中, publication 2026-12-01 09:00",
    "Usage: dispatch [OPTIONS] COMMAND [ARGS]...",
    "Try 'dispatch init --help' for help.",
    "  --force  overwrite files that exist with the packaged defaults",
    "dispatch issues finalize 2 --publish-at 2026-12-01 then send it",
]
# Chinese with what may stay as it is: commands, flags, paths, addresses, URLs, codes.
CHINESE = [
    "用法：dispatch [OPTIONS] COMMAND [ARGS]...",
    "  dispatch --config /srv/xc/config.toml recipients import /srv/xc/recipients/sample.csv",
    "错误：没有 --bogus 这个选项（是不是 --verbose？）",
    "数据库：postgresql+psycopg://postgres:***@127.0.0.1:5432/test",
    "  --format <html|text|wecom|eml>  输出格式（默认：html）",
    "邮箱“zhangsan@example”格式不正确：@ 后面的部分缺少“.”",
    "错误：/srv/xc/config.toml：[database] url = \"sqlite:///var/dispatch.db\"：文件夹不存在",
    "已写入 preview.html（16575 字节）；用 Excel 或 WPS 打开 UTF-8 的 CSV",
    '{"added": 3, "errors": [{"file": "a.csv", "message": "no such column"}]}',
]


@pytest.mark.parametrize("text", ENGLISH)
def test_the_detector_finds_english(text: str) -> None:
    assert english_words(text)


@pytest.mark.parametrize("text", CHINESE)
def test_the_detector_lets_chinese_with_code_names_pass(text: str) -> None:
    assert english_words(text) == []


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "80"}, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def chinese(text: str) -> str:
    """`text`, after checking that it holds no English (the words found are the message)."""
    assert english_words(text) == [], text
    return text


def command_paths() -> list[list[str]]:
    """Every command and group of `dispatch`, as typed: [], ["issues"], ["issues", "ingest"] …"""
    from typer.main import get_command

    paths: list[list[str]] = []
    todo: list[tuple[list[str], object]] = [([], get_command(app))]
    while todo:
        path, command = todo.pop()
        paths.append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            todo.append(([*path, name], sub))
    return sorted(paths)


@pytest.mark.parametrize("command", command_paths(), ids=lambda c: " ".join(c) or "dispatch")
def test_help_is_chinese_and_fits_80_columns(command: list[str]) -> None:
    code, out, _ = run(*command, "--help")
    assert code == 0
    chinese(out)
    assert out.startswith(f"用法：dispatch {' '.join(command)}".rstrip() + " ")
    assert "选项：" in out and "显示本帮助并退出。" in out
    assert max(cells(line) for line in out.splitlines()) <= 80


def test_help_without_a_command_lists_them_in_chinese() -> None:
    code, _, err = run()
    assert code == 2  # click's "no command given"
    assert "命令：" in chinese(err) and "init" in err and "recipients" in err


def test_db_info_and_upgrade(dispatch_sqlite) -> None:
    out = chinese(dispatch_sqlite.ok("db", "upgrade"))
    assert re.fullmatch(r"数据库结构已是最新版本 \d{4}\n", out)
    out = chinese(dispatch_sqlite.ok("db", "info"))
    assert out.startswith("数据库：sqlite:///") and re.search(r"^结构版本：\d{4}$", out, re.M)


def test_init_tells_what_it_made_and_the_next_command_on_one_line(tmp_path) -> None:
    code, out, _ = run("init", str(tmp_path / "xc"))
    assert code == 0
    chinese(out)
    config = tmp_path / "xc" / "config.toml"
    readers = tmp_path / "xc" / "recipients" / "sample.csv"
    assert f"  dispatch --config {config} recipients import {readers}\n" in out
    assert config.is_file() and readers.is_file()


def test_init_refuses_to_overwrite(tmp_path) -> None:
    run("init", str(tmp_path))
    code, out, err = run("init", str(tmp_path))
    assert code == 1 and out == ""
    assert err.startswith("错误：") and "--force" in chinese(err)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["init"], "错误：缺少参数 DIR"),
        (["--bogus", "db", "info"], "错误：没有 --bogus 这个选项"),
        (["db", "info", "--jsn"], "错误：没有 --jsn 这个选项"),
        (["db", "infoo"], "错误：没有“infoo”这个命令（是不是 dispatch db info？）"),
        (["init", "a", "b"], "错误：多余的参数：b"),
        (["issues", "show", "x1"], "错误：ID 的值不对：“x1”不是整数"),
        (["--config"], "错误：选项 --config 后面要跟一个值"),
    ],
)
def test_usage_errors_are_chinese_with_exit_code_2(args: list[str], says: str) -> None:
    code, out, err = run(*args)
    assert code == 2 and out == ""
    assert any(line.startswith(says) for line in chinese(err).splitlines())


def test_a_usage_error_names_the_help_command_on_one_line() -> None:
    _, _, err = run("recipients", "list", "--nope")
    assert err.splitlines()[0].startswith("用法：dispatch recipients list ")
    assert "查看帮助：dispatch recipients list --help" in err.splitlines()


def test_a_missing_config_file_is_refused_in_one_chinese_line(tmp_path) -> None:
    missing = tmp_path / "nowhere" / "config.toml"
    code, out, err = run("--config", str(missing), "db", "info")
    assert code == 1 and out == ""
    assert err == f"错误：{missing}：配置文件不存在\n"


def test_help_needs_no_config(tmp_path) -> None:
    """Help is there even when the config named is broken: it is read only when needed."""
    code, out, _ = run("--config", str(tmp_path / "missing.toml"), "recipients", "--help")
    assert code == 0 and out.startswith("用法：dispatch recipients ")

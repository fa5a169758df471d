"""The command-line framework's own words in Chinese, and help laid out by display width.

Typer bundles its own copy of click, which writes help headings, the help option, usage
lines and usage errors in English, with no gettext catalog to hook into. So this module
takes over at the two places all of that goes through: the help formatter (every help
page, and the usage line of an error, is written by `ctx.make_formatter()`) and the
display of usage errors (`explain`, called by the root command). The English it knows is
matched exactly; any other message is our own commands', shown as it is.

Click also measures text in characters and breaks lines only at spaces; a line of
Chinese is twice as wide as its length and has no spaces, so the formatter here measures
display cells and may break between two Chinese characters.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence

from typer._click.core import Command
from typer._click.exceptions import (
    BadParameter,
    MissingParameter,
    NoSuchOption,
    UsageError,
)
from typer._click.formatting import HelpFormatter
from typer.core import TyperGroup

USAGE = "用法："
SECTIONS = {"Arguments": "参数", "Options": "选项", "Commands": "命令"}
HELP_OPTION = {"Show this message and exit.": "显示本帮助并退出。"}
# The notes typer puts after an option's help, in brackets, joined by "; ".
NOTES = (
    (r"default: (?P<v>.*)", "默认：{v}"),
    (r"required", "必填"),
    (r"env var: (?P<v>.*)", "环境变量：{v}"),
)
# The value types typer writes as <str>, <int> … beside an option.
TYPES = {
    "str": "文本", "int": "整数", "int range": "整数", "float": "数字", "float range": "数字",
    "path": "路径", "file": "文件", "dir": "文件夹", "datetime": "时间", "bool": "是否",
    "uuid": "UUID",
}
PARAM_KINDS = {"argument": "参数", "option": "选项", "parameter": "参数"}
PATH_KINDS = {"file": "文件", "dir": "文件夹", "path": "路径"}

# Usage errors click and typer raise with a message only, and what the value checks say
# (typer checks values with pydantic). Each pattern is matched against the whole message.
NO_SUCH_COMMAND = r"No such command '(?P<name>.*)'\."
MESSAGES = (
    (r"Missing command\.", "缺少命令"),
    (NO_SUCH_COMMAND, "没有“{name}”这个命令"),
    (r"Got unexpected extra argument(?:s|\(s\))? \((?P<args>.*)\)", "多余的参数：{args}"),
    (r"Option '(?P<opt>.*)' requires an argument\.", "选项 {opt} 后面要跟一个值"),
    (r"Option '(?P<opt>.*)' requires (?P<n>\d+) arguments\.", "选项 {opt} 后面要跟 {n} 个值"),
    (r"Option '(?P<opt>.*)' does not take a value\.", "选项 {opt} 后面不能跟值"),
    (r"Argument '(?P<name>.*)' takes (?P<n>\d+) values\.", "参数 {name} 要 {n} 个值"),
    (r"(?:Value error, )?(?P<value>'.*') is not one of (?P<choices>.*)\.",
     "{value} 不在可选的值里（可选：{choices}）"),
    (r"Input should be a valid integer.*", "应为整数"),
    (r"Input should be a valid number.*", "应为数字"),
    (r"Input should be a valid (?:datetime|date).*", "应为日期或时间，如 2026-12-01 09:00"),
    (r"Input should be less than or equal to (?P<n>\S+)", "不能大于 {n}"),
    (r"Input should be less than (?P<n>\S+)", "应小于 {n}"),
    (r"Input should be greater than or equal to (?P<n>\S+)", "不能小于 {n}"),
    (r"Input should be greater than (?P<n>\S+)", "应大于 {n}"),
    (r"(?P<kind>file|dir|path) (?P<path>'.*') does not exist\.", "{kind} {path} 不存在"),
    (r"(?P<kind>file|dir|path) (?P<path>'.*') is a file\.", "{path} 是文件，这里要文件夹"),
    (r"(?P<kind>file|dir|path) (?P<path>'.*') is a directory\.", "{path} 是文件夹，这里要文件"),
    (r"(?P<kind>file|dir|path) (?P<path>'.*') is not readable\.", "{kind} {path} 没有读权限"),
    (r"(?P<kind>file|dir|path) (?P<path>'.*') is not writable\.", "{kind} {path} 没有写权限"),
)

# Characters two cells wide, that may be broken between: CJK, their punctuation, fullwidth.
_WIDE = "\u2e80-\u2fff\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_TOKENS = re.compile(rf"\s+|[{_WIDE}]|[^\s{_WIDE}]+")
_HAS_WIDE = re.compile(f"[{_WIDE}]")
# Punctuation a line must not start with, and punctuation it must not end with.
_CLOSERS = frozenset("，。、；：！？）》」』】〉”’…")
_OPENERS = frozenset("（《「『【〈“‘")


def cells(text: str) -> int:
    """How many terminal columns `text` takes."""
    if text.isascii():
        return len(text)
    return sum(
        0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        for ch in text
    )


def wrap(text: str, width: int, first: str = "", rest: str = "") -> list[str]:
    """One paragraph as lines of at most `width` cells (a longer word is never split:
    a command, a path or an address stays whole). `first` and `rest` are the indents."""
    lines: list[str] = []
    indent, line, used = first, list[tuple[str, str, int]](), cells(first)  # (gap, token, cells)
    space = False
    for token in _TOKENS.findall(text):
        if token.isspace():
            space = bool(line)
            continue
        gap = " " if space else ""
        line.append((gap, token, cells(token)))
        used += len(gap) + line[-1][2]
        space = False
        if len(line) > 1 and used > width:
            # The token goes to the next line; a closing mark takes the word before with
            # it, and an opening mark goes with the word after it.
            keep = len(line) - (2 if token in _CLOSERS and len(line) > 2 else 1)
            if keep > 1 and line[keep - 1][1] in _OPENERS:
                keep -= 1
            lines.append(indent + "".join(g + t for g, t, _ in line[:keep]))
            indent, line = rest, [("", t, n) for _, t, n in line[keep:]]
            used = cells(rest) + sum(n for _, _, n in line)
    lines.append(indent + "".join(g + t for g, t, _ in line))
    return lines


def _paragraphs(text: str) -> Iterator[tuple[bool, str]]:
    """(rewrap?, text) for each blank-line separated paragraph; click's \\b marker keeps one
    as written. Lines of a paragraph are joined with a space, except between Chinese."""
    for block in re.split(r"\n\s*\n", text.strip("\n")):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        if lines[0] == "\b":
            yield False, "\n".join(block.splitlines()[1:])
            continue
        joined = lines[0]
        for line in lines[1:]:
            wide = _HAS_WIDE.match(joined[-1]) or _HAS_WIDE.match(line[0])
            joined += line if wide else " " + line
        yield True, joined


def _notes(help_text: str) -> str:
    """An option's help with typer's trailing "[default: x; required]" in Chinese."""
    found = re.search(r"\s*\[([^\[\]]*)\]$", help_text)
    if found is None:
        return HELP_OPTION.get(help_text, help_text)
    parts = []
    for part in found[1].split("; "):
        for pattern, chinese in NOTES:
            matched = re.fullmatch(pattern, part, re.S)
            if matched:
                part = chinese.format(**matched.groupdict())
                break
        parts.append(part)
    head = help_text[: found.start()]
    return f"{head}（{'；'.join(parts)}）" if head else f"（{'；'.join(parts)}）"


def _types(names: str) -> str:
    """`--limit <int>` → `--limit <整数>`; choices (`<html|text>`) are values: kept."""

    def one(found: re.Match[str]) -> str:
        label = found[1]
        many = label.startswith("list[") and label.endswith("]")
        if many:
            label = label[5:-1]
        label = TYPES.get(label.lower(), label)
        return f"<{label}>..." if many else f"<{label}>"

    return re.sub(r"<([^<>|]+)>", one, names)


class ChineseHelpFormatter(HelpFormatter):
    """Click's formatter with Chinese headings and notes, measuring display cells."""

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        head = f"{'':>{self.current_indent}}{USAGE if prefix is None else prefix}{prog} "
        for line in wrap(args, self.width, head, " " * cells(head)):
            self.write(line.rstrip() + "\n")

    def write_heading(self, heading: str) -> None:
        self.write(f"{'':>{self.current_indent}}{SECTIONS.get(heading, heading)}：\n")

    def write_text(self, text: str) -> None:
        indent = " " * self.current_indent
        blocks = []
        for rewrap, paragraph in _paragraphs(text):
            if rewrap:
                blocks.append("\n".join(wrap(paragraph, self.width, indent, indent)))
            else:
                blocks.append("\n".join(indent + line for line in paragraph.splitlines()))
        self.write("\n\n".join(blocks) + "\n")

    def write_dl(
        self, rows: Sequence[tuple[str, str]], col_max: int = 30, col_spacing: int = 2
    ) -> None:
        rows = [(_types(first), _notes(second)) for first, second in rows]
        first_col = min(max((cells(first) for first, _ in rows), default=0), col_max)
        first_col += col_spacing
        hang = " " * (first_col + self.current_indent)
        for first, second in rows:
            head = f"{'':>{self.current_indent}}{first}"
            if not second:
                self.write(head + "\n")
                continue
            if cells(first) <= first_col - col_spacing:
                head += " " * (first_col - cells(first))
            else:
                self.write(head + "\n")
                head = hang
            width = max(self.width, first_col + self.current_indent + 20)
            for rewrap, paragraph in _paragraphs(second):
                lines = wrap(paragraph, width, head, hang) if rewrap else [head + paragraph]
                self.write("\n".join(lines) + "\n")
                head = hang


def short_help(text: str) -> str:
    """A command's line in its group's list: its help's first sentence."""
    first = next(_paragraphs(text), (True, ""))[1]
    sentence = re.match(r"(.+?)(?:。|\.(?:\s|$))", first)
    return sentence[1] if sentence else first


def speak_chinese(command: Command) -> None:
    """Give `command` the line its group lists it with: click shortens by words, which
    Chinese has no spaces between (it would leave "..." for a long first sentence)."""
    if command.help and not command.short_help:
        command.short_help = short_help(command.help)


def explain(exc: UsageError) -> tuple[str | None, str, str | None]:
    """(usage line, the error in Chinese, the help command to run) for a usage error."""
    ctx = exc.ctx
    usage = ctx.get_usage() if ctx is not None else None
    hint = None
    if ctx is not None and ctx.command.get_help_option(ctx) is not None:
        hint = f"{ctx.command_path} {ctx.help_option_names[0]}"
    return usage, _message(exc), hint


def _message(exc: UsageError) -> str:
    if isinstance(exc, NoSuchOption):
        text = f"没有 {exc.option_name} 这个选项"
        if exc.possibilities:
            text += f"（是不是 {'、'.join(sorted(exc.possibilities))}？）"
        return text
    if isinstance(exc, MissingParameter):
        kind = exc.param_type or (exc.param.param_type_name if exc.param else "parameter")
        text = f"缺少{PARAM_KINDS.get(kind, '参数')} {_hint(exc)}".rstrip()
        choices = _choices(exc)
        return f"{text}（可选：{choices}）" if choices else text
    if isinstance(exc, BadParameter):
        where = _hint(exc)
        detail = _detail(exc.message)
        return f"{where} 的值不对：{detail}" if where else f"值不对：{detail}"
    text = _detail(exc.message)
    name = re.fullmatch(NO_SUCH_COMMAND, exc.message)
    if name and exc.ctx is not None and isinstance(exc.ctx.command, TyperGroup):
        from difflib import get_close_matches

        near = get_close_matches(name["name"], list(exc.ctx.command.commands), n=1)
        if near:
            text += f"（是不是 {exc.ctx.command_path} {near[0]}？）"
    return text


def _detail(message: str) -> str:
    """A framework's or pydantic's message in Chinese, if it is one of MESSAGES; any other
    is our own commands' (typer.BadParameter), already in Chinese, shown as it is."""
    for pattern, chinese in MESSAGES:  # compiled only now: errors are rare, help is not
        found = re.fullmatch(pattern, message, re.S)
        if found:
            fields = found.groupdict()
            if "kind" in fields:
                fields["kind"] = PATH_KINDS[fields["kind"]]
            return chinese.format(**fields)
    return message


def _hint(exc: BadParameter) -> str:
    if exc.param_hint is not None:
        hint = exc.param_hint if isinstance(exc.param_hint, str) else " / ".join(exc.param_hint)
    elif exc.param is not None:
        hint = exc.param.get_error_hint()
    else:
        return ""
    return re.sub(r"'([^']*)'", r"\1", hint)


def _choices(exc: MissingParameter) -> str:
    if exc.param is None:
        return ""
    extra = exc.param.get_missing_message(exc.ctx) or ""
    found = re.match(r"Choose from:\s*(.*)", extra, re.S)
    return "、".join(c.strip() for c in found[1].split(",")) if found else ""

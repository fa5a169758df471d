"""Finds English in what the CLI prints: `english_words(text)` lists the Latin-letter words
a staff member would read that are not allowed to stay as they are.

Allowed, because they are typed, copied or are names rather than words to translate:

- a JSON document (the whole text parses as JSON): its keys and values are for machines;
- URLs (any scheme: https://…, sqlite:///…, postgresql+psycopg://…), e-mail addresses
  (well-formed or not: `zhangsan@example`), host:port, file paths (anything with a `/` or
  `\\`) and file names with an extension (`preview.html`, `sample.csv`);
- flags (`--dry-run`, `-o`) and $ENVIRONMENT variables;
- a command line: after the word `dispatch` on a line, the names of dispatch's commands
  and the value right after a flag (`dispatch send 3 --format html`); a command's name
  first on a line (the list of commands in a help page);
- what the user typed, or a name, between Chinese quotes: 没有“infoo”这个命令;
- metavars and acronyms in capitals (ID, PATH, KEY, OPTIONS, SMTP, CSV, UTF-8, IMAP …),
  and identifiers with a digit or `_` (base_url, 0004, message_id);
- values between `|` (`<html|text|wecom|eml>`: the choices of an option);
- settings in TOML form: `[smtp] host`, `url = "…"`;
- CODE_NAMES below (product and format names, the values options take) and the industry
  codes (dispatch.industries.CODES);
- single letters (`1<=x<=5`).

Everything else made of Latin letters is English a staff member would have to read.
"""

from __future__ import annotations

import json
import re
from functools import cache

from dispatch.industries import CODES

# Names that are not translated: products, formats, and the values the CLI's options take.
CODE_NAMES = frozenset({
    "dispatch", "WeChat", "Excel", "WPS", "PostgreSQL", "SQLite", "Postfix", "Chromium",
    "Markdown", "Word", "systemd", "nginx",
    "html", "text", "eml", "wecom", "email", "userid",  # --format and --channel values
    "active", "inactive", "unsubscribed",  # --status values, as the lists accept them
})

_SPANS = [re.compile(p) for p in (
    r"WeChat Work",
    r"“[^”]*”",
    r"[A-Za-z][\w+.-]*://\S*",  # URLs of any scheme
    r"[^\s@，。、；：（）《》“”'\"<>]+@[^\s@，。、；：（）《》“”'\"<>]+",  # addresses
    r"[\w.-]+:\d+\b",  # host:port
    r"[^\s，。、；：（）《》“”'\"`|<>\[\]]*[/\\][^\s，。、；：（）《》“”'\"`|<>\[\]]*",  # paths
    r"\b[\w.-]+\.(?:txt|md|docx|csv|xlsx|xls|toml|html|eml|xml|json|j2|db|py|log|service)\b",
    r"(?<![\w.])\.(?:txt|text|md|markdown|docx|csv|xlsx|xls|toml|html|eml|xml|json)\b",  # .txt alone
    r"\$\w+",
    r"\[[a-z_]+\](?: [a-z_]+)?",  # [smtp] host
    r"\b[a-z_]+ = \"[^\"]*\"",  # url = "…"
    r"[\w.-]+(?:\|[\w.-]+)+",  # a|b|c
)]
_FLAG = re.compile(r"(?<![\w-])--?[A-Za-z][\w-]*")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_'’-]*")


@cache
def command_names() -> frozenset[str]:
    """The names of every command and group of `dispatch`."""
    from typer.main import get_command

    from dispatch.cli import app

    names: set[str] = set()
    todo = [get_command(app)]
    while todo:
        command = todo.pop()
        sub = getattr(command, "commands", {})
        names.update(sub)
        todo.extend(sub.values())
    return frozenset(names)


def english_words(text: str) -> list[str]:
    """The words of `text` (what the CLI printed) that a staff member would read in English."""
    try:
        json.loads(text)
        return []
    except ValueError:
        pass
    found: list[str] = []
    for line in text.splitlines():
        found.extend(_line_words(line))
    return found


def _line_words(line: str) -> list[str]:
    for span in _SPANS:
        line = span.sub(" ", line)
    program = re.search(r"\bdispatch\b", line)
    command_from = program.end() if program else len(line) + 1
    first = re.match(r"\s*([a-z-]+)\b", line)
    if first and first[1] in command_names():
        command_from = min(command_from, first.start(1))
    after_flag = {m.end() + 1 for m in _FLAG.finditer(line)}
    line = _FLAG.sub(lambda m: " " * len(m[0]), line)
    words = []
    for m in _WORD.finditer(line):
        word = m[0].strip("'’-")
        if _allowed(word):
            continue
        if m.start() >= command_from and (word in command_names() or m.start() in after_flag):
            continue
        words.append(word)
    return words


def _allowed(word: str) -> bool:
    return (
        len(word) <= 1
        or not any(c.islower() for c in word)  # ID, PATH, UTF-8
        or any(c.isdigit() or c == "_" for c in word)
        or word in CODE_NAMES
        or word.lower() in CODE_NAMES
        or word in CODES
    )

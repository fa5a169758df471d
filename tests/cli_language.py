"""Latin words a staff member should not meet in the CLI's output.

A minimal stand-in, written by the `issues` helper until core's module of the same path
and name lands (the lead keeps core's at merge). `english_words(text)` returns the Latin
words found outside what is allowed: command and flag names, metavars in CAPS, e-mail
addresses, URLs, file paths and names, JSON output, and known code names. Until core
makes the typer/click framework's own strings Chinese, their words are allowed here too.
"""

from __future__ import annotations

import json
import re

COMMANDS = {
    "dispatch", "issues", "ingest", "list", "show", "tag", "retag", "finalize",
    "reschedule", "delete", "recipients", "import", "export", "find", "add", "set",
    "deactivate", "activate", "preview", "send", "status", "retry", "run", "worker",
    "catcher", "init", "db", "upgrade", "info",
}
CODE_NAMES = {
    "smtp", "csv", "xlsx", "json", "html", "text", "eml", "wecom", "email", "utf", "wechat",
    "work", "excel", "imap", "tls", "starttls", "postgresql", "sqlite", "docx", "md", "txt",
    "markdown", "word", "wps", "id", "userid", "url", "mime", "asia", "shanghai", "message",
    "news", "jinja", "toml", "nginx", "systemd", "sigterm", "sigint", "auth", "mail", "from",
    "rcpt", "data", "ok", "it",
}
# The framework's own words (Usage, Options, …), the `error:` prefix and the --json flag's
# help: core's to translate (cli/__init__.py), allowed here until then.
FRAMEWORK = {
    "usage", "options", "arguments", "commands", "show", "this", "message", "and", "exit",
    "default", "required", "int", "bool", "str", "path", "integer", "float", "choice",
    "error", "print", "try", "for", "help", "invalid", "value", "missing", "option",
    "root",  # the program name CliRunner gives in usage lines
}

_SKIP = [
    re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),  # e-mail addresses
    re.compile(r"\b[a-z][a-z0-9+.-]*://\S+"),  # URLs
    re.compile(r"(?:[\w.~-]*/)+[\w.~-]+"),  # paths
    re.compile(r"\b[\w-]+\.(?:txt|md|docx|csv|xlsx|html|eml|json|toml|log|db)\b", re.I),
    re.compile(r"(?<![\w-])--?[a-z][a-z0-9-]*"),  # flags
    re.compile(r"\[/?[a-z ]+\]"),  # Rich markup left in a string
]
_WORD = re.compile(r"[A-Za-z]+")


def english_words(text: str) -> list[str]:
    """The Latin words of `text` a staff member should not have to read."""
    try:
        json.loads(text)
    except ValueError:
        pass
    else:
        return []  # machine output: its keys and values are English on purpose
    for pattern in _SKIP:
        text = pattern.sub(" ", text)
    found = []
    for word in _WORD.findall(text):
        if word.isupper() or word.lower() in COMMANDS | CODE_NAMES | FRAMEWORK:
            continue  # metavars (ID, PATH, YYYY-MM-DD), commands, code names
        found.append(word)
    return found

"""The Jinja2 environment every template (email, web pages) is rendered with.

Templates live in the configured folder (config.paths.templates), so staff can change
the look without touching code. A template the folder lacks comes from the packaged
defaults: an instance made by an older `dispatch init` keeps its own look and still has
the pages a newer version added. HTML templates (*.html.j2) are autoescaped; text ones
(*.txt.j2) are not. A misspelt variable is an error
(StrictUndefined), never an empty string in front of a reader.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined

from dispatch import defaults
from dispatch.clock import cn_date, cn_time
from dispatch.masthead import BULLETIN, INSTITUTE

if TYPE_CHECKING:
    from dispatch.config import Config

# Extensions (without the leading dot) whose templates are autoescaped.
HTML_EXTENSIONS = ("html.j2", "html", "htm")


def _autoescape(name: str | None) -> bool:
    return name is not None and name.lower().endswith(tuple("." + e for e in HTML_EXTENSIONS))


def join_cn(values: Iterable[str], sep: str = "、") -> str:
    """Words joined the Chinese way: 生物医药、新能源汽车."""
    return sep.join(str(v) for v in values)


class _InSection(Protocol):
    @property
    def section(self) -> str: ...


_A = TypeVar("_A", bound=_InSection)


def by_section(articles: Iterable[_A]) -> list[tuple[str, list[_A]]]:
    """Articles grouped by their section, in the order they come (Jinja's groupby sorts)."""
    groups: list[tuple[str, list[_A]]] = []
    for a in articles:
        if groups and groups[-1][0] == a.section:
            groups[-1][1].append(a)
        else:
            groups.append((a.section, [a]))
    return groups


def make_environment(templates_dir: str | Path) -> Environment:
    env = Environment(
        loader=ChoiceLoader([
            FileSystemLoader(str(templates_dir)),
            FileSystemLoader(str(defaults.path(defaults.TEMPLATES))),
        ]),
        autoescape=_autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["cn_date"] = cn_date
    env.filters["cn_time"] = cn_time
    env.filters["join_cn"] = join_cn
    env.filters["by_section"] = by_section
    env.globals["bulletin"] = BULLETIN
    env.globals["institute"] = INSTITUTE
    return env


def environment(config: Config) -> Environment:
    """The environment on the operator's templates folder."""
    return make_environment(config.path(config.paths.templates))

"""The files dispatch ships: templates, keyword rules, a commented config.toml, samples.

They are package data, found with importlib.resources, never relative to the working
folder or a checkout. Without a config file (or when it doesn't name them) the service
uses them in place; `dispatch init` copies them into an instance folder for staff to
edit. The repository's top-level templates/, rules/, recipients/, samples/ and
config.toml are symlinks to these: one copy of each file.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

# Paths relative to the packaged folder and to an instance folder alike.
CONFIG = "config.toml"
TEMPLATES = "templates"
RULES = "rules/industries.toml"
RECIPIENTS = "recipients"
READERS_FORMAT = "recipients/README.md"
SAMPLE_READERS = "recipients/sample.csv"
SAMPLE_ISSUE = "samples/issue-sample.txt"
STATIC = "static"  # the staff web's own script, served at /admin/static/ (not copied by init)
# What `dispatch init` copies. recipients/ is named file by file: in a checkout it is also
# where staff may keep real lists, which must never be shipped (pyproject names them too).
INSTANCE_ITEMS = (CONFIG, TEMPLATES, RULES, READERS_FORMAT, SAMPLE_READERS, SAMPLE_ISSUE)


def root() -> Traversable:
    return files(__name__)


def path(relative: str) -> Path:
    """A packaged file or folder as a real path, for Jinja's loader and the rule reader.

    pip installs packages as plain folders, so the resources are files on disk; a zipped
    install is not supported (the templates folder must be a folder).
    """
    resource = root().joinpath(*PurePosixPath(relative).parts)
    if not isinstance(resource, Path):
        raise RuntimeError(f"dispatch's packaged files are not on disk ({resource!r})")
    return resource


def instance_files() -> Iterator[tuple[PurePosixPath, Traversable]]:
    """Every file `dispatch init` writes: (path in the instance, packaged resource)."""

    def walk(resource: Traversable, at: PurePosixPath) -> Iterator[tuple[PurePosixPath, Traversable]]:
        if resource.is_dir():
            for child in sorted(resource.iterdir(), key=lambda r: r.name):
                if child.name != "__pycache__":
                    yield from walk(child, at / child.name)
        elif resource.is_file():
            yield at, resource

    for item in INSTANCE_ITEMS:
        yield from walk(root().joinpath(*PurePosixPath(item).parts), PurePosixPath(item))

"""Command-line values converted without pydantic.

Typer converts every option and argument through a pydantic TypeAdapter; importing
pydantic for that cost about as much as all the rest of `dispatch recipients --help`
(the root's --config is converted even when not given). Text, flags, whole numbers and
paths, the kinds dispatch's commands take, need nothing pydantic does: such a parameter gets a
plain converter here, with typer's own checks for paths. Any other kind keeps typer's.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from typer._click.exceptions import BadParameter
from typer._coercion import PassThroughRuntimeParam, RuntimeParam
from typer._param_types import coerce_cli_path
from typer.core import _TyperParameter

if TYPE_CHECKING:
    from typer._click.core import Context, Parameter


@dataclass(frozen=True)
class _Integer(RuntimeParam):
    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if re.fullmatch(r"\s*[+-]?\d+\s*", str(value)):
            return int(value)
        raise BadParameter(f"“{value}”不是整数", ctx=ctx, param=param)


@dataclass(frozen=True)
class _Path(RuntimeParam):
    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
        # path_type=None: typer's existence and permission checks, without its pydantic step.
        checked = coerce_cli_path(value, self.parameter_info, path_type=None, param=param, ctx=ctx)
        return Path(os.fsdecode(checked))


def plain(param: Parameter) -> RuntimeParam | None:
    """The converter for `param` if it is text, a flag, an integer or a path; else None."""
    if not isinstance(param, _TyperParameter):
        return None
    desc = param.type_descriptor
    if param.nargs != 1 or param.multiple or getattr(param, "count", False):
        return None
    if desc.is_choice or desc.file_annotation is not None:
        return None
    fields = {"parameter_info": desc.parameter_info, "annotation": desc.annotation}
    if desc.annotation in (str, bool):  # flags are bools already, text is str already
        return PassThroughRuntimeParam(**fields)
    if desc.annotation is int and not desc.is_ranged:
        return _Integer(**fields)
    if desc.annotation is Path:
        return _Path(**fields)
    return None


def without_pydantic(param: Parameter) -> None:
    """Give `param` its plain converter, if it has one and typer has not made its own."""
    if isinstance(param, _TyperParameter) and param._runtime_param is None:
        param._runtime_param = plain(param)  # None: typer builds its own on first use

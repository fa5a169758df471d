"""`dispatch recipients`: import and export the reader lists, list, show, add, change."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dispatch import clock
from dispatch.cli import JsonFlag, print_json, runtime_of
from dispatch.cli.screen import console
from dispatch.errors import Refused
from dispatch.industries import describe
from dispatch.readers import COLUMNS, ImportReport, ReaderRecord, channel_words, status_word

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from dispatch.db.models import Reader

app = typer.Typer(no_args_is_help=True)


def _out() -> Console:
    # Made per command, so the terminal's width (or $COLUMNS) at the time counts.
    from rich.console import Console

    return Console(highlight=False)

KeyArg = Annotated[str, typer.Argument(help="the reader: email, WeChat Work user id, or id")]

# Options of add/set and the field each gives; errors name the option.
OPTION_OF = {
    "name": "--name",
    "organization": "--org",
    "position": "--position",
    "group": "--group",
    "email": "--email",
    "wecom_userid": "--wecom",
    "industries": "--industries",
    "channels": "--channels",
}
FIELD_LABELS = {f: f"{o}（{COLUMNS[f]}）" for f, o in OPTION_OF.items()}


def reader_json(r: Reader) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "organization": r.organization,
        "position": r.position,
        "group": r.group,
        "email": r.email,
        "wecom_userid": r.wecom_userid,
        "follows_all": bool(r.follows_all),
        "industries": [] if r.follows_all else r.industries,
        "channels": r.channels,
        "status": r.status,
        "created_at": clock.show(r.created_at),
        "updated_at": clock.show(r.updated_at),
    }


def _industries_text(r: Reader) -> str:
    return describe(bool(r.follows_all), [] if r.follows_all else r.industries)


# --- import / export ---------------------------------------------------------------------


@app.command("import")
def import_(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="lists to import: .csv or .xlsx")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="check and count, write nothing")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Import reader lists: all of them are checked first; any error, nothing is written."""
    from dispatch.readers.apply import import_lists

    report = import_lists(runtime_of(ctx).sessions, paths, dry_run=dry_run)
    if as_json:
        print_json(report.to_json())
    else:
        _print_report(report)
    if report.errors:
        raise Refused(f"{len(report.errors)} error(s) in the reader list(s); nothing was written")


def _print_report(report: ImportReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    if report.errors:
        for e in report.errors:
            console(stderr=True).print(escape(str(e)), soft_wrap=True)
        return
    table = Table(title="读者名单导入")
    for label in ("新增", "更新", "未变", "合计"):
        table.add_column(label, justify="right")
    total = report.added + report.updated + report.unchanged
    table.add_row(str(report.added), str(report.updated), str(report.unchanged), str(total))
    _out().print(table)
    for col in report.ignored_columns:
        _out().print(escape(f"note: {col['file']}: column “{col['column']}” is not part of the format; ignored"))
    for k in report.kept_unsubscribed:
        _out().print(escape(
            f"note: {k['file']}:{k['row']}: reader {k['id']} unsubscribed and stays unsubscribed"
        ))
    if report.dry_run:
        for c in report.changes:
            if c["action"] == "updated":
                fields = "、".join(dict.fromkeys(COLUMNS[_col(f)] for f in c["fields"]))
                _out().print(escape(f"would update reader {c['id']} ({c['file']}:{c['row']}): {fields}"))
        _out().print("dry run: nothing was written")


def _col(field: str) -> str:
    return {"follows_all": "industries"}.get(field, field)


@app.command("export")
def export(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="file to write: .csv (Excel-ready) or .xlsx")],
    industry: Annotated[str | None, typer.Option(help="only readers of this industry")] = None,
    group: Annotated[str | None, typer.Option(help="only this group (分组)")] = None,
    channel: Annotated[str | None, typer.Option(help="only readers by 邮件/email or 企业微信/wecom")] = None,
    status: Annotated[str | None, typer.Option(help="only 正常/active, 停用/inactive or 退订/unsubscribed")] = None,
) -> None:
    """Write the readers as a list that Excel opens and `import` reads back unchanged."""
    from dispatch.db.session import transaction
    from dispatch.readers.apply import load_readers
    from dispatch.readers.export import export as export_readers

    keep = _filter(industry, group, channel, status)
    with transaction(runtime_of(ctx).sessions) as session:
        readers = [r for r in load_readers(session) if keep(r)]
        export_readers(readers, path)
    typer.echo(f"wrote {len(readers)} readers to {path}")


# --- list / show -------------------------------------------------------------------------


def _filter(industry: str | None, group: str | None, channel: str | None,
            status: str | None) -> Callable[[Reader], bool]:
    from dispatch.readers.validate import parse_channels, parse_industries, parse_status

    tests: list[Callable[[Reader], bool]] = []
    if industry is not None:
        try:
            follows_all, codes = parse_industries(industry)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--industry") from None
        if not follows_all:
            tests.append(lambda r: bool(r.follows_all) or bool(set(codes) & set(r.industries)))
    if group is not None:
        tests.append(lambda r: r.group == group.strip())
    if channel is not None:
        try:
            wanted = parse_channels(channel)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--channel") from None
        tests.append(lambda r: bool(set(wanted) & set(r.channels)))
    if status is not None:
        try:
            st = parse_status(status)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--status") from None
        if st:
            tests.append(lambda r: r.status == st)
    return lambda r: all(t(r) for t in tests)


def _reader_table(readers: list[Reader], title: str | None = None) -> Table:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title)
    table.add_column("ID", justify="right")
    for f, label in COLUMNS.items():
        # Addresses wrap rather than lose their end to an ellipsis.
        table.add_column(label, overflow="fold" if f in ("email", "wecom_userid") else "ellipsis")
    for r in readers:
        table.add_row(
            str(r.id),
            *(escape(v) for v in (
                r.name, r.organization, r.position, r.group, r.email or "",
                r.wecom_userid or "", _industries_text(r), channel_words(r.channels),
                status_word(r.status),
            )),
        )
    return table


@app.command("list")
def list_(
    ctx: typer.Context,
    industry: Annotated[str | None, typer.Option(help="only readers of this industry (name or code; 全部 follow all)")] = None,
    group: Annotated[str | None, typer.Option(help="only this group (分组)")] = None,
    channel: Annotated[str | None, typer.Option(help="only readers by 邮件/email or 企业微信/wecom")] = None,
    status: Annotated[str | None, typer.Option(help="only 正常/active, 停用/inactive or 退订/unsubscribed")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List readers."""
    from dispatch.db.session import transaction
    from dispatch.readers.apply import load_readers

    keep = _filter(industry, group, channel, status)
    with transaction(runtime_of(ctx).sessions) as session:
        readers = [r for r in load_readers(session) if keep(r)]
        if as_json:
            print_json([reader_json(r) for r in readers])
            return
        _out().print(_reader_table(readers, title=f"读者 {len(readers)} 人"))


@app.command("show")
def show(ctx: typer.Context, key: KeyArg, as_json: JsonFlag = False) -> None:
    """Show one reader."""
    from dispatch.db.session import transaction
    from dispatch.readers.apply import find_reader

    with transaction(runtime_of(ctx).sessions) as session:
        r = find_reader(session, key)
        _show(r, as_json)


def _show(r: Reader, as_json: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    if as_json:
        print_json(reader_json(r))
        return
    table = Table(show_header=False, title=f"读者 {r.id}")
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("姓名", r.name), ("单位", r.organization), ("职务", r.position), ("分组", r.group),
        ("邮箱", r.email or ""), ("企业微信账号", r.wecom_userid or ""),
        ("关注产业", _industries_text(r)), ("接收方式", channel_words(r.channels)),
        ("状态", status_word(r.status)), ("加入时间", clock.show(r.created_at)),
        ("更新时间", clock.show(r.updated_at)),
    ]
    for label, value in rows:
        table.add_row(label, escape(value))
    _out().print(table)


# --- add / set / activate / deactivate ---------------------------------------------------

NameOpt = Annotated[str | None, typer.Option("--name", help="姓名")]
EmailOpt = Annotated[str | None, typer.Option("--email", help="email address ('' to remove)")]
WecomOpt = Annotated[str | None, typer.Option("--wecom", help="WeChat Work user id ('' to remove)")]
IndustriesOpt = Annotated[str | None, typer.Option("--industries", help="e.g. '生物医药、新材料' or 全部")]
ChannelsOpt = Annotated[str | None, typer.Option("--channels", help="邮件, 企业微信 or 全部; '' = by addresses")]
OrgOpt = Annotated[str | None, typer.Option("--org", help="单位")]
PositionOpt = Annotated[str | None, typer.Option("--position", help="职务")]
GroupOpt = Annotated[str | None, typer.Option("--group", help="分组, e.g. 市领导")]


def _fields(
    name: str | None, email: str | None, wecom: str | None, industries: str | None,
    channels: str | None, org: str | None, position: str | None, group: str | None,
) -> dict[str, str | None]:
    """The options of add and set, by the field each gives (OPTION_OF)."""
    return {"name": name, "organization": org, "position": position, "group": group,
            "email": email, "wecom_userid": wecom, "industries": industries,
            "channels": channels}


def _record(values: dict[str, str | None], *, need_identity: bool) -> ReaderRecord:
    from dispatch.readers.apply import RecordRefused
    from dispatch.readers.validate import build_record

    record, errors = build_record(
        {f: v for f, v in values.items() if v is not None},
        file="command line", row=None, labels=FIELD_LABELS, need_identity=need_identity,
    )
    if record is None:
        raise RecordRefused(errors)
    return record


@app.command("add")
def add(
    ctx: typer.Context,
    name: NameOpt = None,
    email: EmailOpt = None,
    wecom: WecomOpt = None,
    industries: IndustriesOpt = None,
    channels: ChannelsOpt = None,
    org: OrgOpt = None,
    position: PositionOpt = None,
    group: GroupOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Add one reader (checked as an imported row is)."""
    from dispatch.db.session import transaction
    from dispatch.readers.apply import add_reader

    values = _fields(name, email, wecom, industries, channels, org, position, group)
    record = _record(values, need_identity=True)
    with transaction(runtime_of(ctx).sessions) as session:
        reader = add_reader(session, record)
        if as_json:
            print_json(reader_json(reader))
        else:
            typer.echo(f"added reader {reader.id}")


@app.command("set")
def set_(
    ctx: typer.Context,
    key: KeyArg,
    name: NameOpt = None,
    email: EmailOpt = None,
    wecom: WecomOpt = None,
    industries: IndustriesOpt = None,
    channels: ChannelsOpt = None,
    org: OrgOpt = None,
    position: PositionOpt = None,
    group: GroupOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Change a reader: only the options given change."""
    from dispatch.db.session import transaction
    from dispatch.readers.apply import find_reader, update_reader

    values = _fields(name, email, wecom, industries, channels, org, position, group)
    if all(v is None for v in values.values()):
        console(stderr=True).print("nothing to change: give at least one of " + ", ".join(OPTION_OF.values()))
        raise typer.Exit(2)
    record = _record(values, need_identity=False)
    with transaction(runtime_of(ctx).sessions) as session:
        reader = find_reader(session, key)
        changed = update_reader(session, reader, record)
        if as_json:
            print_json(reader_json(reader))
        elif changed:
            typer.echo(f"reader {reader.id}: changed {', '.join(changed)}")
        else:
            typer.echo(f"reader {reader.id}: nothing changed")


@app.command("deactivate")
def deactivate(ctx: typer.Context, key: KeyArg) -> None:
    """Stop sending to a reader (status 停用); `activate` undoes it."""
    from dispatch.db.session import transaction
    from dispatch.readers.apply import find_reader, set_status

    with transaction(runtime_of(ctx).sessions) as session:
        reader = find_reader(session, key)
        if reader.status == "unsubscribed":
            typer.echo(f"reader {reader.id} has unsubscribed; nothing is sent to them anyway")
            return
        changed = set_status(session, reader, "inactive")
        typer.echo(f"reader {reader.id}: " + ("deactivated" if changed else "already inactive"))


@app.command("activate")
def activate(
    ctx: typer.Context,
    key: KeyArg,
    resubscribe: Annotated[bool, typer.Option(
        "--resubscribe", help="also for a reader who unsubscribed (only when they asked)"
    )] = False,
) -> None:
    """Send to a reader again (status 正常)."""
    from dispatch.db.session import transaction
    from dispatch.readers.apply import find_reader, set_status

    with transaction(runtime_of(ctx).sessions) as session:
        reader = find_reader(session, key)
        if reader.status == "unsubscribed" and not resubscribe:
            raise Refused(
                f"reader {reader.id} unsubscribed; activate them only if they asked to be "
                "sent the bulletin again, with --resubscribe"
            )
        changed = set_status(session, reader, "active")
        typer.echo(f"reader {reader.id}: " + ("activated" if changed else "already active"))

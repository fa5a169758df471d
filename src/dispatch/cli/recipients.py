"""`dispatch recipients`: import and export the reader lists; list, find, show, add, change.

Only what every command needs is imported here; the database, the list readers and Rich's
tables are imported by the commands that use them (start-up time).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dispatch.cli import JsonFlag, print_json, runtime_of
from dispatch.cli.screen import console
from dispatch.errors import Refused

if TYPE_CHECKING:
    from datetime import datetime

    from rich.console import Console

    from dispatch.db.models import Reader
    from dispatch.readers import ImportReport, ReaderRecord
    from dispatch.readers.apply import Listed, ReaderState

    # A logged change as `show` prints it: when, source, field, old and new value.
    Logged = tuple[datetime, str, str, str | None, str | None]

app = typer.Typer(no_args_is_help=True, help="读者名单：导入、导出、查看、查找和修改读者。")


def _out(width: int | None = None) -> Console:
    from rich.console import Console

    # Made per command, so the terminal's width (or $COLUMNS) at the time counts.
    return Console(highlight=False, width=width)


KeyArg = Annotated[str, typer.Argument(
    metavar="读者", help="读者的邮箱、企业微信账号或编号；有歧义时写成 邮箱:…、企业微信:… 或 编号:…",
)]

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


def reader_json(listed: Listed) -> dict[str, Any]:
    from dispatch import clock

    s = listed.state
    return {
        "id": listed.id,
        "name": s.name,
        "organization": s.organization,
        "position": s.position,
        "group": s.group,
        "email": s.email,
        "wecom_userid": s.wecom_userid,
        "follows_all": s.follows_all,
        "industries": list(s.industries),
        "channels": list(s.channels),
        "status": s.status,
        "created_at": clock.show(listed.created_at),
        "updated_at": clock.show(listed.updated_at),
        "paused_until": clock.show(listed.paused_until) or None,
        "email_suspended_at": clock.show(listed.email_suspended_at) or None,
        "email_bounces": listed.email_bounces,
    }


def _listed(reader: Reader) -> Listed:
    from dispatch.readers.apply import Listed, state_of

    return Listed(reader.id, state_of(reader), reader.created_at, reader.updated_at,
                  reader.paused_until, reader.email_suspended_at, reader.email_bounces)


# --- import / export ---------------------------------------------------------------------


@app.command("import")
def import_(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(
        metavar="文件…", help="要导入的名单：CSV 或 XLSX 文件，可以给出多个",
    )],
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="试运行：只检查和统计，不写入",
    )] = False,
    as_json: JsonFlag = False,
) -> None:
    """导入读者名单（CSV 或 XLSX 文件）。

    先检查所有文件的每一行；有任何错误，就什么都不写入，并列出每处错误所在的文件、行和列。
    """
    from dispatch.readers.apply import import_lists

    report = import_lists(runtime_of(ctx).sessions, paths, dry_run=dry_run)
    if as_json:
        print_json(report.to_json())
    else:
        _print_report(report)
    if report.errors:
        raise Refused(f"读者名单中有 {len(report.errors)} 处错误，没有写入任何内容")


def _print_report(report: ImportReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    if report.errors:
        for e in report.errors:
            # One line each, however long: file, row and column stay together.
            console(stderr=True).print(escape(str(e)), soft_wrap=True)
        return
    out = _out()
    table = Table(title="读者名单导入（试运行）" if report.dry_run else "读者名单导入")
    for label in ("新增", "更新", "未变", "合计"):
        table.add_column(label, justify="right")
    total = report.added + report.updated + report.unchanged
    table.add_row(str(report.added), str(report.updated), str(report.unchanged), str(total))
    out.print(table)
    for col in report.ignored_columns:
        out.print(escape(f"提示：{col['file']} 中的“{col['column']}”列不属于名单格式，已忽略"),
                  soft_wrap=True)
    for k in report.kept_unsubscribed:
        out.print(escape(
            f"提示：{k['file']}:{k['row']} 的读者 {k['id']}（{k['name']}）已退订，仍保持退订"
        ), soft_wrap=True)
    if report.dry_run:
        for c in report.changes:
            if c.action == "updated":
                out.print(escape(
                    f"将更新读者 {c.id}（{c.file}:{c.row}）：{_field_words(c.fields)}"
                ), soft_wrap=True)
        out.print("试运行：没有写入任何内容")


def _field_words(fields: tuple[str, ...] | list[str]) -> str:
    """'职务、关注产业' for ('position', 'follows_all', 'industries')."""
    from dispatch.readers import COLUMNS

    column = {"follows_all": "industries"}
    return "、".join(dict.fromkeys(COLUMNS[column.get(f, f)] for f in fields))


FilterOpts = tuple[str | None, str | None, str | None, str | None]
IndustryOpt = Annotated[str | None, typer.Option(
    "--industry", metavar="产业", help="只要关注此产业的读者（名称或代码；关注“全部”的读者也算）",
)]
GroupFilterOpt = Annotated[str | None, typer.Option(
    "--group", metavar="分组", help="只要此分组的读者",
)]
ChannelOpt = Annotated[str | None, typer.Option(
    "--channel", metavar="方式", help="只要按此方式接收的读者：邮件或企业微信",
)]
StatusOpt = Annotated[str | None, typer.Option(
    "--status", metavar="状态",
    help="只要此状态的读者：正常、停用、退订、暂停（读者自己暂停接收）或退信停发（邮箱多次退信，停发邮件）",
)]


@app.command("export")
def export(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(
        metavar="文件", help="要写入的文件：CSV（Excel 可直接打开）或 XLSX，按文件的扩展名",
    )],
    industry: IndustryOpt = None,
    group: GroupFilterOpt = None,
    channel: ChannelOpt = None,
    status: StatusOpt = None,
) -> None:
    """把读者导出为名单（CSV 或 XLSX 文件）。

    Excel 可以直接打开；用 dispatch recipients import 导回，读者不会有任何变化。
    """
    from dispatch.db.session import transaction
    from dispatch.readers.apply import list_readers
    from dispatch.readers.export import export as export_readers

    where = _filter(industry, group, channel, status)
    with transaction(runtime_of(ctx).sessions) as session:
        states = [r.state for r in list_readers(session, where)]
    export_readers(states, path)
    typer.echo(f"已把 {len(states)} 位读者写入 {path}")


# --- list / find / show ------------------------------------------------------------------


def _filter(industry: str | None, group: str | None, channel: str | None,
            status: str | None, text: str = "") -> Any:
    """The options as a condition on the readers (dispatch.readers.query); None: all."""
    from dispatch.clock import utcnow
    from dispatch.readers.query import FilterError, condition, parse_filter

    try:
        wanted = parse_filter(text=text, industry=industry, group=group, channel=channel,
                              status=status)
    except FilterError as exc:
        raise typer.BadParameter(exc.message, param_hint=f"--{exc.field}") from None
    return condition(wanted, utcnow())


WideOpt = Annotated[bool, typer.Option("--wide", help="显示所有列（较宽，不截断）")]
CsvOpt = Annotated[bool, typer.Option("--csv", help="输出 CSV（名单的列，加上编号）")]


@app.command("list")
def list_(
    ctx: typer.Context,
    industry: IndustryOpt = None,
    group: GroupFilterOpt = None,
    channel: ChannelOpt = None,
    status: StatusOpt = None,
    wide: WideOpt = False,
    as_json: JsonFlag = False,
    as_csv: CsvOpt = False,
) -> None:
    """列出读者。

    默认只显示编号、姓名、单位、地址（邮箱，或企业微信账号）和状态，适合 80 列的终端；
    --wide 显示所有列，--json 和 --csv 供程序读取。
    """
    from dispatch.db.session import transaction
    from dispatch.readers.apply import list_readers

    _one_format(as_json, as_csv)
    where = _filter(industry, group, channel, status)
    with transaction(runtime_of(ctx).sessions) as session:
        readers = list_readers(session, where)
    if not readers and not (as_json or as_csv):
        filtered = any(v is not None for v in (industry, group, channel, status))
        typer.echo("没有符合条件的读者" if filtered else
                   "还没有读者；导入名单：dispatch recipients import 名单.csv")
        return
    _print_readers(readers, wide=wide, as_json=as_json, as_csv=as_csv)


@app.command("find")
def find(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(
        metavar="文字", help="要找的文字：姓名、单位、邮箱或企业微信账号的一部分（不区分英文大小写）",
    )],
    industry: IndustryOpt = None,
    group: GroupFilterOpt = None,
    channel: ChannelOpt = None,
    status: StatusOpt = None,
    wide: WideOpt = False,
    as_json: JsonFlag = False,
    as_csv: CsvOpt = False,
) -> None:
    """按姓名、单位、邮箱或企业微信账号查找读者。

    找含有这段文字的读者，不区分英文大小写；输出形式与 dispatch recipients list 相同。没有找到时也正常退出
    （退出码 0），--json 输出 []。
    """
    from dispatch.db.session import transaction
    from dispatch.readers.apply import list_readers

    _one_format(as_json, as_csv)
    if not text.strip():
        raise typer.BadParameter("要找的文字为空", param_hint="文字")
    where = _filter(industry, group, channel, status, text)
    with transaction(runtime_of(ctx).sessions) as session:
        readers = list_readers(session, where)
    if not readers and not (as_json or as_csv):
        typer.echo(f"没有找到姓名、单位、邮箱或企业微信账号中含有“{text.strip()}”的读者")
        return
    _print_readers(readers, wide=wide, as_json=as_json, as_csv=as_csv)


def _one_format(as_json: bool, as_csv: bool) -> None:
    if as_json and as_csv:
        raise typer.BadParameter("--json 和 --csv 只能选一个", param_hint="--csv")


def _print_readers(readers: list[Listed], *, wide: bool, as_json: bool, as_csv: bool) -> None:
    if as_json:
        print_json([reader_json(r) for r in readers])
    elif as_csv:
        import sys

        from dispatch.readers.export import reader_row, write_csv

        write_csv(([str(r.id), *reader_row(r.state)] for r in readers), sys.stdout,
                  header=["编号", *_column_labels()])
    elif wide:
        _print_wide(readers)
    else:
        _print_narrow(readers)


def _column_labels() -> list[str]:
    from dispatch.readers import COLUMNS

    return list(COLUMNS.values())


def _address(s: ReaderState) -> str:
    """The address a reader is reached at first: the email, else the WeChat Work id."""
    if s.email and (not s.channels or "email" in s.channels or not s.wecom_userid):
        return s.email
    return s.wecom_userid or s.email or ""


_GAP = "  "  # between two columns
_NAME_WIDTH = 12  # cells: six Chinese characters
_ORG_WIDTH = 8  # cells the organisation keeps before addresses move to their own line
_LABELS = ("编号", "姓名", "单位", "地址", "状态")


def _print_narrow(readers: list[Listed]) -> None:
    from dispatch.clock import utcnow
    from dispatch.readers import state_words

    now = utcnow()
    rows = [(str(r.id), r.state.name, r.state.organization, _address(r.state),
             state_words(r.states(now))) for r in readers]
    typer.echo("\n".join(narrow_table(rows, _out().width, title=f"读者 {len(rows)} 人")))


def narrow_table(rows: list[tuple[str, str, str, str, str]], width: int, title: str) -> list[str]:
    """编号 · 姓名 · 单位 · 地址 · 状态 in ``width`` terminal cells.

    An address is never cut or broken: when one is too long for its column (the
    organisation keeping at least ``_ORG_WIDTH`` cells), it goes whole on a line of its own
    below its row. Names over ``_NAME_WIDTH`` cells and organisations are cut short with … .
    """
    from rich.cells import cell_len

    def widest(i: int) -> int:
        return max(cell_len(_LABELS[i]), *(cell_len(row[i]) for row in rows))

    id_w, status_w = widest(0), widest(4)
    name_w = min(_NAME_WIDTH, widest(1))
    gap = len(_GAP)
    room = width - (id_w + name_w + status_w + 3 * gap)  # for 单位, a gap and 地址
    org_max = widest(2)
    # The address column is as wide as the longest address that fits beside a short
    # organisation; a longer one goes on a line of its own. The organisation gets the rest.
    fitting = [cell_len(row[3]) for row in rows if cell_len(row[3]) <= room - gap - _ORG_WIDTH]
    address_w = max([cell_len(_LABELS[3]), *fitting])
    org_w = min(org_max, room - gap - address_w)
    if org_w < _ORG_WIDTH and org_w < org_max:  # too narrow for the organisation at all
        org_w, address_w = 0, max(cell_len(_LABELS[3]), room)
    widths = (id_w, name_w, org_w, address_w, status_w)
    shown = [i for i, w in enumerate(widths) if w]
    address_at = sum(widths[i] + gap for i in shown if i < 3)

    def line(cells: tuple[str, ...]) -> str:
        return _line([cells[i] for i in shown], [widths[i] for i in shown])

    lines = [title, line(_LABELS), _rule([widths[i] for i in shown])]
    for row in rows:
        address = row[3]
        if cell_len(address) <= address_w:
            lines.append(line(row))
            continue
        lines.append(line((*row[:3], "", row[4])))
        # Under its column if it fits there, else from the left edge; whole either way.
        indent = address_at if address_at + cell_len(address) <= width else 0
        lines.append(" " * indent + address)
    return lines


def _line(cells: list[str], widths: list[int]) -> str:
    """One line of a table; the first column (the 编号) right-aligned."""
    from rich.cells import cell_len

    first = " " * (widths[0] - cell_len(cells[0])) + cells[0]
    return _GAP.join([first, *(_fit(c, w) for c, w in zip(cells[1:], widths[1:], strict=True))]).rstrip()


def _rule(widths: list[int]) -> str:
    return "─" * (sum(widths) + len(_GAP) * (len(widths) - 1))


def _fit(text: str, width: int) -> str:
    """``text`` in exactly ``width`` cells: padded, or cut with … ."""
    from rich.cells import cell_len, set_cell_size

    if cell_len(text) <= width:
        return text + " " * (width - cell_len(text))
    return set_cell_size(set_cell_size(text, width - 1).rstrip() + "…", width)


def _print_wide(readers: list[Listed]) -> None:
    """Every column, nothing cut: lines as wide as the longest values need."""
    from rich.cells import cell_len

    from dispatch.readers.export import reader_cells

    labels = ["编号", *_column_labels()]
    rows = [[str(r.id), *reader_cells(r.state)] for r in readers]
    widths = [max(cell_len(row[i]) for row in [labels, *rows]) for i in range(len(labels))]
    lines = [f"读者 {len(rows)} 人", _line(labels, widths), _rule(widths)]
    lines += [_line(row, widths) for row in rows]
    typer.echo("\n".join(lines))


@app.command("show")
def show(ctx: typer.Context, key: KeyArg, as_json: JsonFlag = False) -> None:
    """显示一位读者的全部信息。"""
    from dispatch.db.session import transaction
    from dispatch.readers.apply import find_reader
    from dispatch.readers.changes import recent_changes

    with transaction(runtime_of(ctx).sessions) as session:
        listed = _listed(find_reader(session, key))
        changes = [(c.at, c.source, c.field, c.old, c.new)
                   for c in recent_changes(session, listed.id, SHOWN_CHANGES)]
    _show(listed, changes, as_json)


# How many of a reader's last changes `show` lists.
SHOWN_CHANGES = 5


def _show(listed: Listed, changes: list[Logged], as_json: bool) -> None:
    """Label and value, one line each, never wrapped: an address stays whole."""
    from rich.cells import cell_len

    from dispatch import clock
    from dispatch.readers import state_words
    from dispatch.readers.changes import describe_change, pause_date
    from dispatch.readers.export import reader_cells
    from dispatch.statewords import CHANGE_SOURCE_WORDS

    if as_json:
        print_json({**reader_json(listed), "changes": [
            {"at": clock.show(at), "source": source, "field": field, "old": old, "new": new}
            for at, source, field, old, new in changes
        ]})
        return
    now = clock.utcnow()
    states = listed.states(now)
    cells = reader_cells(listed.state)
    rows = list(zip(_column_labels(), cells, strict=True))
    if states != (listed.state.status,):
        rows[-1] = (rows[-1][0], f"{cells[-1]}（{state_words(states)}）")
    if "paused" in states and listed.paused_until is not None:
        rows.append(("暂停至", f"{clock.cn_date(pause_date(listed.paused_until))}"
                               "（读者自己暂停，到期自动恢复）"))
    if listed.email_suspended_at is not None:
        rows.append(("邮件退信停发", f"自 {clock.show(listed.email_suspended_at)}，"
                                     f"连续退信 {listed.email_bounces} 次；"
                                     f"核实邮箱后恢复：dispatch recipients activate {listed.id}"))
    elif listed.email_bounces:
        rows.append(("邮件退信", f"连续 {listed.email_bounces} 次"))
    rows += [("加入时间", clock.show(listed.created_at)),
             ("更新时间", clock.show(listed.updated_at))]
    width = max(cell_len(label) for label, _ in rows)
    lines = [f"读者 {listed.id}"]
    lines += [f"  {label}{' ' * (width - cell_len(label))}  {value}" for label, value in rows]
    if changes:
        lines.append("  最近的修改")
        lines += [f"    {clock.show(at)}  {CHANGE_SOURCE_WORDS.get(source, source)}  "
                  f"{describe_change(field, old, new)}" for at, source, field, old, new in changes]
    typer.echo("\n".join(lines))


# --- add / set / activate / deactivate ---------------------------------------------------

NameOpt = Annotated[str | None, typer.Option("--name", metavar="姓名", help="姓名")]
EmailOpt = Annotated[str | None, typer.Option(
    "--email", metavar="邮箱", help="邮箱地址（给空值 \"\" 表示删除）",
)]
WecomOpt = Annotated[str | None, typer.Option(
    "--wecom", metavar="账号", help="企业微信账号（给空值 \"\" 表示删除）",
)]
IndustriesOpt = Annotated[str | None, typer.Option(
    "--industries", metavar="产业", help="关注产业，如“生物医药、新材料”，或“全部”",
)]
ChannelsOpt = Annotated[str | None, typer.Option(
    "--channels", metavar="方式", help="接收方式：邮件、企业微信或全部；空值 \"\" 表示按已有地址",
)]
OrgOpt = Annotated[str | None, typer.Option("--org", metavar="单位", help="单位")]
PositionOpt = Annotated[str | None, typer.Option("--position", metavar="职务", help="职务")]
GroupOpt = Annotated[str | None, typer.Option(
    "--group", metavar="分组", help="分组，如“市领导”",
)]


def _fields(
    name: str | None, email: str | None, wecom: str | None, industries: str | None,
    channels: str | None, org: str | None, position: str | None, group: str | None,
) -> dict[str, str | None]:
    """The options of add and set, by the field each gives (OPTION_OF)."""
    return {"name": name, "organization": org, "position": position, "group": group,
            "email": email, "wecom_userid": wecom, "industries": industries,
            "channels": channels}


def _record(values: dict[str, str | None], *, need_identity: bool) -> ReaderRecord:
    from dispatch.readers import COLUMNS
    from dispatch.readers.apply import RecordRefused
    from dispatch.readers.validate import build_record

    labels = {f: f"{o}（{COLUMNS[f]}）" for f, o in OPTION_OF.items()}
    record, errors = build_record(
        {f: v for f, v in values.items() if v is not None},
        file="命令行", row=None, labels=labels, need_identity=need_identity,
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
    """添加一位读者。

    检查与导入名单时相同。
    """
    from dispatch.db.session import transaction
    from dispatch.readers.apply import add_reader

    values = _fields(name, email, wecom, industries, channels, org, position, group)
    record = _record(values, need_identity=True)
    with transaction(runtime_of(ctx).sessions) as session:
        listed = _listed(add_reader(session, record))
    if as_json:
        print_json(reader_json(listed))
    else:
        typer.echo(f"已添加读者 {listed.id}")


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
    """修改一位读者。

    只改给出的选项。
    """
    from dispatch.db.session import transaction
    from dispatch.readers.apply import find_reader, update_reader

    values = _fields(name, email, wecom, industries, channels, org, position, group)
    if all(v is None for v in values.values()):
        console(stderr=True).print("没有要修改的内容：请至少给出 " + "、".join(OPTION_OF.values()) + " 中的一项",
                  soft_wrap=True)
        raise typer.Exit(2)
    record = _record(values, need_identity=False)
    with transaction(runtime_of(ctx).sessions) as session:
        reader = find_reader(session, key)
        changed = update_reader(session, reader, record)
        listed = _listed(reader)
    if as_json:
        print_json(reader_json(listed))
    elif changed:
        typer.echo(f"读者 {listed.id}：已修改{_field_words(changed)}")
    else:
        typer.echo(f"读者 {listed.id}：没有变化")


@app.command("deactivate")
def deactivate(ctx: typer.Context, key: KeyArg) -> None:
    """停用一位读者：不再给他发送。

    读者留在名单中，状态为“停用”；用 dispatch recipients activate 恢复。
    """
    from dispatch.db.session import transaction
    from dispatch.readers.apply import find_reader, set_status

    with transaction(runtime_of(ctx).sessions) as session:
        reader = find_reader(session, key)
        if reader.status == "unsubscribed":
            typer.echo(f"读者 {reader.id} 已退订，本来就不会收到快递")
            return
        changed = set_status(session, reader, "inactive")
        typer.echo(f"读者 {reader.id}：" + ("已停用" if changed else "本来就是停用状态"))


@app.command("activate")
def activate(
    ctx: typer.Context,
    key: KeyArg,
    resubscribe: Annotated[bool, typer.Option(
        "--resubscribe", help="读者已退订时也恢复（只在读者本人要求重新接收时使用）",
    )] = False,
) -> None:
    """恢复给一位读者发送。

    状态改为“正常”；读者自己设置的暂停也一并取消；邮箱因多次退信而停发的，恢复发送邮件
    （请先核实邮箱，必要时用 dispatch recipients set 改正）。已退订的读者只有本人要求时才能恢复，
    须加 --resubscribe。
    """
    from dispatch.db.session import transaction
    from dispatch.readers.apply import find_reader
    from dispatch.readers.changes import ACTIVATED_WORDS, StillUnsubscribed
    from dispatch.readers.changes import activate as activate_reader

    with transaction(runtime_of(ctx).sessions) as session:
        reader = find_reader(session, key)
        try:
            done = [ACTIVATED_WORDS[f] for f in activate_reader(session, reader,
                                                                 resubscribe=resubscribe)]
        except StillUnsubscribed:
            raise Refused(
                f"读者 {reader.id} 已退订；只有读者本人要求重新接收时，"
                "才能加上 --resubscribe 恢复发送"
            ) from None
        typer.echo(f"读者 {reader.id}：" + ("；".join(done) if done else "本来就是正常状态"))

"""`dispatch send | status | retry | run | worker | catcher`."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from dispatch import clock
from dispatch.cli import JsonFlag, print_json, runtime_of
from dispatch.cli.words import DELIVERY_WORDS, ISSUE_WORDS, channel_word
from dispatch.errors import Refused
from dispatch.net import split_host_port

if TYPE_CHECKING:
    from dispatch.runtime import Runtime

out = Console(highlight=False)


def _service_logging() -> None:
    import logging

    level = logging.getLogger().level
    if level > logging.INFO:
        logging.getLogger().setLevel(logging.INFO)
    for noisy in ("alembic", "apscheduler", "aiosmtpd", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _status_data(runtime: Runtime, issue_id: int) -> dict:
    from dispatch.db.session import transaction
    from dispatch.deliver import report

    lateness = timedelta(hours=runtime.config.schedule.max_lateness_hours)
    with transaction(runtime.sessions) as session:
        return report.issue_status(session, issue_id, clock.utcnow(), lateness)


def _print_status(data: dict, configured: set[str]) -> None:
    from rich.markup import escape
    from rich.table import Table

    head = f"issue {data['issue']}: {ISSUE_WORDS[data['status']]}"
    if data["publish_at"]:
        head += f", publication {data['publish_at']} (Asia/Shanghai)"
    out.print(head)
    if data["overdue"]:
        out.print(
            "[yellow]overdue: its publication time passed while the service was down; "
            f"it waits for staff: `dispatch send {data['issue']}`[/yellow]"
        )
    table = Table("渠道", *[DELIVERY_WORDS[s] for s in DELIVERY_WORDS], "合计")
    for channel, states in data["counts"].items():
        if not sum(states.values()):
            continue
        table.add_row(
            channel_word(channel),
            *[str(states.get(s, 0)) for s in DELIVERY_WORDS],
            str(sum(states.values())),
        )
    out.print(table)
    for channel, states in data["counts"].items():
        waiting = states.get("queued", 0)
        if waiting and channel not in configured:
            out.print(
                f"[yellow]{waiting} {channel} deliveries stay queued: the {channel} channel "
                "is not configured (they go out once it is)[/yellow]"
            )
    if data["failures"]:
        ft = Table("读者", "渠道", "尝试", "原因", title="失败")
        for f in data["failures"]:
            ft.add_row(f"{f['reader']} {escape(f['name'])}", channel_word(f["channel"]),
                       str(f["attempts"]), escape(f["reason"] or ""))
        out.print(ft)


def _configured(runtime: Runtime) -> set[str]:
    from dispatch.deliver.channel import configured

    return set(configured(runtime.config))


def send(
    ctx: typer.Context,
    issue_id: Annotated[int, typer.Argument(metavar="ISSUE")],
    wait: Annotated[bool, typer.Option("--wait", help="deliver now and return when nothing is pending")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show who would get what, send nothing")] = False,
    to: Annotated[str | None, typer.Option("--to", help="send one test copy to ADDRESS only")] = None,
    recipient: Annotated[
        str | None, typer.Option("--recipient", "-r", help="with --to: render as this reader (default: one following 全部)")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Plan and deliver an issue now (whatever its publication time)."""
    import asyncio

    from dispatch.db.session import transaction
    from dispatch.lifecycle import claim_for_send
    from dispatch.plan import fanout

    runtime = runtime_of(ctx)
    if to is not None:
        _send_test_copy(runtime, issue_id, to, recipient)
        return
    if dry_run:
        _dry_run(runtime, issue_id, as_json)
        return
    with transaction(runtime.sessions) as session:
        before = claim_for_send(session, issue_id)
    planned = fanout.fan_out(runtime.sessions, issue_id)
    if not as_json:
        out.print(f"issue {issue_id} ({ISSUE_WORDS[before]}): planned "
                  + ", ".join(f"{n} {ch}" for ch, n in planned.items()))
    if wait:
        asyncio.run(_deliver_until_done(runtime, issue_id, show_progress=not as_json and sys.stderr.isatty()))
    data = _status_data(runtime, issue_id)
    if as_json:
        print_json(data)
    else:
        _print_status(data, _configured(runtime))


async def _deliver_until_done(runtime: Runtime, issue_id: int, *, show_progress: bool) -> None:
    import asyncio

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from dispatch.deliver import report
    from dispatch.deliver.worker import Worker

    worker = Worker(runtime)
    serving = set(worker.channels)

    def pending() -> tuple[int, int]:
        with runtime.sessions() as session:
            return report.pending(report.counts(session, issue_id), serving)

    progress = Progress(
        TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), disable=not show_progress,
    )
    try:
        with progress:
            left, total = await asyncio.to_thread(pending)
            bar = progress.add_task("send", total=total, completed=total - left)
            while left:
                result = await worker.run_batch()
                left, total = await asyncio.to_thread(pending)
                progress.update(bar, completed=total - left)
                if result.claimed == 0 and left:
                    # Only rows waiting for a retry later are left: wait for them.
                    await asyncio.sleep(min(worker.idle_seconds, 5))
    finally:
        await worker.close()


def _dry_run(runtime: Runtime, issue_id: int, as_json: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    from dispatch import editorial
    from dispatch.plan import fanout
    from dispatch.render.pipeline import IssueRenderer, ReaderView
    from dispatch.render.templates import environment

    rows = []
    with runtime.sessions() as session:
        issue = editorial.get_issue(session, issue_id)
        renderer = IssueRenderer.for_issue(issue, environment(runtime.config), runtime.config)
        titles = {a.id: a.title for a in renderer.view.articles}
        for r in fanout.audience(session):
            view = ReaderView.of(r)
            sel = renderer.selection(view)
            rows.append({
                "reader": r.id, "name": r.name, "channels": r.channels,
                "recommended": [titles[i] for i in sel.recommended],
                "others": len(sel.others), "whole_issue": sel.whole_issue,
            })
        channel_counts = fanout.audience_by_channel(session)
    if as_json:
        print_json({"issue": issue_id, "by_channel": channel_counts, "readers": rows})
        return
    table = Table("读者", "渠道", "为您推荐", title=f"issue {issue_id}: who would get what (nothing sent)")
    for row in rows:
        rec = "全部内容" if row["whole_issue"] else "；".join(row["recommended"]) or "（无）"
        table.add_row(f"{row['reader']} {escape(row['name'])}",
                      "、".join(channel_word(ch) for ch in row["channels"]), escape(rec))
    out.print(table)
    out.print("deliveries: " + ", ".join(f"{n} {ch}" for ch, n in channel_counts.items()))


def _send_test_copy(runtime: Runtime, issue_id: int, to: str, recipient: str | None) -> None:
    import asyncio

    from rich.markup import escape

    from dispatch import editorial
    from dispatch.cli.preview import PREVIEW_TOKEN
    from dispatch.deliver.channel import Outgoing
    from dispatch.deliver.smtp import SmtpChannel
    from dispatch.plan import fanout
    from dispatch.readers.apply import find_reader
    from dispatch.readers.validate import normalize_email
    from dispatch.render.pipeline import IssueRenderer, ReaderView
    from dispatch.render.templates import environment

    try:
        address = normalize_email(to)
    except ValueError as exc:
        raise Refused(f"--to: {exc}") from exc
    with runtime.sessions() as session:
        issue = editorial.get_issue(session, issue_id)
        if recipient:
            reader = ReaderView.of(find_reader(session, recipient))
        else:
            first = fanout.whole_issue_reader(session)
            reader = ReaderView(id=0, name="测试读者") if first is None else ReaderView.of(first)
        renderer = IssueRenderer.for_issue(issue, environment(runtime.config), runtime.config)
    view = ReaderView(**{**reader.__dict__, "email": address})
    payload = renderer.email_message(view, PREVIEW_TOKEN)
    sender = renderer.links(PREVIEW_TOKEN).envelope_sender

    async def go():
        channel = SmtpChannel.from_config(runtime.config)
        try:
            return await channel.push([Outgoing(0, address, payload, sender)])
        finally:
            await channel.close()

    [outcome] = asyncio.run(go())
    if outcome.kind != "sent":
        raise Refused(f"test copy to {address} not sent ({outcome.kind}): {outcome.detail}")
    out.print(f"test copy of issue {issue_id}, as {escape(reader.name)} reads it, sent to {address}")


def status(
    ctx: typer.Context,
    issue_id: Annotated[int, typer.Argument(metavar="ISSUE")],
    as_json: JsonFlag = False,
) -> None:
    """Deliveries of an issue by channel and state, and the failures with reasons."""
    runtime = runtime_of(ctx)
    data = _status_data(runtime, issue_id)
    if as_json:
        print_json(data)
    else:
        _print_status(data, _configured(runtime))


def retry(ctx: typer.Context, issue_id: Annotated[int, typer.Argument(metavar="ISSUE")]) -> None:
    """Queue an issue's failed deliveries again."""
    from dispatch import editorial
    from dispatch.db.session import transaction
    from dispatch.deliver import leases

    runtime = runtime_of(ctx)
    with transaction(runtime.sessions) as session:
        editorial.get_issue(session, issue_id)
        n = leases.retry_failed(session, issue_id)
    out.print(f"issue {issue_id}: {n} failed deliveries queued again")


def run(ctx: typer.Context) -> None:
    """Serve everything in one process: web app, scheduler and a delivery worker."""
    import asyncio

    from dispatch.service import serve

    _service_logging()
    asyncio.run(serve(runtime_of(ctx)))


def worker(ctx: typer.Context) -> None:
    """A delivery worker only (more of them share the work; PostgreSQL for several machines)."""
    import asyncio

    from dispatch.service import serve

    _service_logging()
    asyncio.run(serve(runtime_of(ctx), web=False, scheduler=False))


def catcher(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Option("--dir", help="where messages are kept")] = Path("var/mail"),
    listen: Annotated[str | None, typer.Option("--listen", help="host:port (default: [smtp] host and port)")] = None,
) -> None:
    """A local mail catcher: receives on loopback and keeps each message as an .eml file."""
    from rich.console import Console
    from rich.markup import escape

    from dispatch.catcher import exposure_warning, serve_forever

    runtime = runtime_of(ctx)
    host, port = (runtime.config.smtp.host, runtime.config.smtp.port)
    if listen:
        try:
            host, port = split_host_port(listen)
        except ValueError:
            raise Refused(f"--listen {listen}：应为 主机:端口，如 127.0.0.1:2525") from None
    warning = exposure_warning(host)
    if warning:
        Console(stderr=True, highlight=False).print(f"[yellow]{escape(warning)}[/yellow]", soft_wrap=True)
    _service_logging()
    serve_forever(host, port, runtime.config.path(str(folder)))


def register(app: typer.Typer) -> None:
    for fn in (send, status, retry, run, worker, catcher):
        app.command(fn.__name__)(fn)

"""`dispatch send | status | retry | run | worker | catcher | wecom-sim`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dispatch.cli import JsonFlag, print_json, runtime_of
from dispatch.cli.screen import console, hint, table
from dispatch.cli.words import DELIVERY_WORDS, ISSUE_WORDS, channel_word
from dispatch.errors import Refused

if TYPE_CHECKING:
    from dispatch.runtime import Runtime

IssueId = Annotated[int, typer.Argument(metavar="ISSUE", help="期刊编号（见 dispatch issues list）")]


def _service_logging() -> None:
    level = logging.getLogger().level
    if level > logging.INFO:
        logging.getLogger().setLevel(logging.INFO)
    for noisy in ("alembic", "apscheduler", "aiosmtpd", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _status_data(runtime: Runtime, issue_id: int) -> dict[str, Any]:
    from datetime import timedelta

    from dispatch import clock
    from dispatch.db.session import transaction
    from dispatch.deliver import report

    lateness = timedelta(hours=runtime.config.schedule.max_lateness_hours)
    with transaction(runtime.sessions) as session:
        return report.issue_status(session, issue_id, clock.utcnow(), lateness)


def _by_channel(counts: dict[str, int]) -> str:
    """'邮件 18、企业微信 19'."""
    return "、".join(f"{channel_word(ch)} {n}" for ch, n in counts.items()) or "无"


def _print_status(data: dict[str, Any], configured: set[str]) -> None:
    from rich.markup import escape

    from dispatch.deliver.report import reason_words

    out = console()
    head = f"期刊 {data['issue']}：{ISSUE_WORDS[data['status']]}"
    if data["publish_at"]:
        head += f"，发布时间 {data['publish_at']}（北京时间）"
    out.print(head)
    if data["overdue"]:
        hint(
            out,
            "[yellow]已逾期：发布时间在服务停机期间过去太久，不会自动发出，等工作人员决定。"
            "要发送：[/yellow]",
            f"dispatch send {data['issue']}",
        )
    t = table("渠道", *DELIVERY_WORDS.values(), "合计", narrow=("渠道",))
    for channel, states in data["counts"].items():
        if not sum(states.values()):
            continue
        t.add_row(
            channel_word(channel),
            *[str(states.get(s, 0)) for s in DELIVERY_WORDS],
            str(sum(states.values())),
        )
    out.print(t)
    for channel, states in data["counts"].items():
        waiting = states.get("queued", 0)
        if waiting and channel not in configured:
            word = channel_word(channel)
            out.print(
                f"[yellow]{word}渠道尚未配置：{waiting} 条{word}投递留在排队中，"
                "配置好后自动发出[/yellow]"
            )
    if data["failures"]:
        ft = table("读者", "渠道", "尝试", "原因", title="失败的投递",
                   narrow=("渠道", "尝试"))
        for f in data["failures"]:
            ft.add_row(f"{f['reader']} {escape(f['name'])}", channel_word(f["channel"]),
                       str(f["attempts"]), escape(reason_words(f["reason"] or "")))
        out.print(ft)


def _configured(runtime: Runtime) -> set[str]:
    from dispatch.deliver.channel import configured

    return set(configured(runtime.config))


def send(
    ctx: typer.Context,
    issue_id: IssueId,
    wait: Annotated[
        bool, typer.Option("--wait", help="在本进程里立即投递，直到没有待发的才返回")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="只列出谁会收到什么，不发送")
    ] = False,
    to: Annotated[
        str | None,
        typer.Option("--to", metavar="ADDRESS", help="只发一份测试稿到这个邮箱，不算投递"),
    ] = None,
    recipient: Annotated[
        str | None,
        typer.Option("--recipient", "-r", metavar="KEY",
                     help="配合 --to：以这位读者的身份生成； 默认取一位关注“全部”的读者"),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """立即排入并投递一期（不管发布时间到没到）。"""
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
    if wait and runtime.config.wecom.enabled:
        from dispatch.deliver.wecom import check_config

        check_config(runtime.config)  # before anything is queued: never half done
    with transaction(runtime.sessions) as session:
        before = claim_for_send(session, issue_id)
    planned = fanout.fan_out(runtime.sessions, issue_id)
    if not as_json:
        console().print(
            f"期刊 {issue_id}（原为{ISSUE_WORDS[before]}）：新排入发件箱 {_by_channel(planned)}"
        )
    if wait:
        asyncio.run(_deliver_until_done(runtime, issue_id, show_progress=not as_json and sys.stderr.isatty()))
    data = _status_data(runtime, issue_id)
    if as_json:
        print_json(data)
    else:
        _print_status(data, _configured(runtime))


async def _deliver_until_done(runtime: Runtime, issue_id: int, *, show_progress: bool) -> None:
    import asyncio

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from dispatch.deliver import report
    from dispatch.deliver.worker import Worker

    worker = Worker(runtime)
    serving = set(worker.channels)

    def pending() -> tuple[int, int]:
        with runtime.sessions() as session:
            return report.pending(report.counts(session, issue_id), serving)

    progress = Progress(
        TextColumn("发送中"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console(stderr=True), disable=not show_progress,
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
    from dataclasses import asdict

    from rich.markup import escape

    from dispatch.plan import dry_run

    with runtime.sessions() as session:
        found = dry_run.audience(session, issue_id)
    if as_json:
        print_json({"issue": issue_id, "by_channel": found.by_channel,
                    "readers": [asdict(row) for row in found.rows]})
        return
    t = table("读者", "渠道", "为您推荐", title=f"期刊 {issue_id}：谁会收到什么（试运行，不发送）")
    for row in found.rows:
        rec = "全部内容" if row.whole_issue else "\n".join(row.recommended) or "（无）"
        t.add_row(f"{row.reader} {escape(row.name)}",
                  "、".join(channel_word(ch) for ch in row.channels), escape(rec))
    out = console()
    out.print(t)
    out.print(f"将投递：{_by_channel(found.by_channel)}")


def _send_test_copy(runtime: Runtime, issue_id: int, to: str, recipient: str | None) -> None:
    from rich.markup import escape

    from dispatch.cli.preview import cli_warning, warn
    from dispatch.deliver.test_copy import BadAddress, send_test_copy

    try:
        result = send_test_copy(runtime, issue_id, to, recipient)
    except BadAddress as exc:
        raise Refused(f"--to：{exc}") from exc
    if result.reader.warning:
        warn(escape(cli_warning(result.reader)))
    if not result.sent:
        raise Refused(result.words)
    console().print(
        f"测试稿已发到 {result.address}：期刊 {issue_id}，按 {escape(result.reader.view.name)} 的视角生成",
        soft_wrap=True,
    )


def status(ctx: typer.Context, issue_id: IssueId, as_json: JsonFlag = False) -> None:
    """一期的投递情况：按渠道和状态计数，失败的投递及原因。"""
    runtime = runtime_of(ctx)
    data = _status_data(runtime, issue_id)
    if as_json:
        print_json(data)
    else:
        _print_status(data, _configured(runtime))


def retry(ctx: typer.Context, issue_id: IssueId) -> None:
    """把一期失败的投递重新排队。"""
    from dispatch import editorial
    from dispatch.db.session import transaction

    runtime = runtime_of(ctx)
    with transaction(runtime.sessions) as session:
        n = editorial.retry_failed(session, issue_id)
    console().print(f"期刊 {issue_id}：{n} 个失败的投递已重新排队")


def run(ctx: typer.Context) -> None:
    """运行服务：网页、定时发布和一个投递进程，都在这一个进程里；收到停止信号时干净地停下。"""
    import asyncio

    from dispatch.service import serve

    _service_logging()
    asyncio.run(serve(runtime_of(ctx)))


def worker(ctx: typer.Context) -> None:
    """只运行一个投递进程（可以多开，分担投递；多台机器时用 PostgreSQL）。"""
    import asyncio

    from dispatch.service import serve

    _service_logging()
    asyncio.run(serve(runtime_of(ctx), web=False, scheduler=False))


def catcher(
    ctx: typer.Context,
    folder: Annotated[
        Path, typer.Option("--dir", metavar="PATH", help="存信的文件夹； 相对路径从配置文件所在的文件夹算起")
    ] = Path("var/mail"),
    listen: Annotated[
        str | None,
        typer.Option("--listen", metavar="HOST:PORT", help="监听的主机和端口，默认同配置文件 [smtp] 里的主机和端口"),
    ] = None,
) -> None:
    """本地邮件收集器，试用时代替邮件服务器：在本机收信，每封存成一个 .eml 文件。"""
    from rich.markup import escape

    from dispatch.catcher import exposure_warning, serve_forever
    from dispatch.net import split_host_port

    runtime = runtime_of(ctx)
    host, port = (runtime.config.smtp.host, runtime.config.smtp.port)
    if listen:
        try:
            host, port = split_host_port(listen)
        except ValueError:
            raise Refused(f"--listen {listen}：应为 主机:端口，如 127.0.0.1:2525") from None
    warning = exposure_warning(host)
    if warning:
        console(stderr=True).print(f"[yellow]{escape(warning)}[/yellow]", soft_wrap=True)
    _service_logging()
    serve_forever(host, port, runtime.config.path(str(folder)))


def wecom_sim(
    ctx: typer.Context,
    listen: Annotated[
        str, typer.Option("--listen", metavar="HOST:PORT", help="监听的主机和端口")
    ] = "127.0.0.1:8090",
    folder: Annotated[
        Path, typer.Option("--dir", metavar="PATH", help="存消息的文件夹； 相对路径从配置文件所在的文件夹算起")
    ] = Path("var/wecom"),
    corp_id: Annotated[
        str | None, typer.Option("--corp-id", metavar="ID", help="企业 ID，默认同配置文件 [wecom] corp_id")
    ] = None,
    agent_id: Annotated[
        int | None, typer.Option("--agent-id", metavar="N", help="应用编号，默认同配置文件 [wecom] agent_id")
    ] = None,
) -> None:
    """本地企业微信接口模拟器，试用时代替企业微信服务器：每条送达的消息存成一个 .json 文件。
    应用密钥取自环境变量 DISPATCH_WECOM_SECRET。"""
    from rich.markup import escape

    from dispatch.net import split_host_port
    from dispatch.wecom_sim import WecomSim, exposure_warning, serve_forever
    from dispatch.wecom_sim import listen as bind

    runtime = runtime_of(ctx)
    try:
        host, port = split_host_port(listen)
    except ValueError:
        raise Refused(f"--listen {listen}：应为 主机:端口，如 127.0.0.1:8090") from None
    secret = runtime.config.secrets.wecom_secret
    if not secret:
        raise Refused("企业微信模拟器：请先在环境变量 DISPATCH_WECOM_SECRET 里设定应用密钥")
    target = runtime.config.path(str(folder))
    try:
        sim = WecomSim(corp_id=corp_id or runtime.config.wecom.corp_id or "wwsimcorp",
                       agent_id=agent_id or runtime.config.wecom.agent_id or 1000002,
                       secret=secret, folder=target)
    except OSError as exc:
        from dispatch.errors import os_reason

        raise Refused(f"企业微信模拟器：建不了存消息的文件夹 {target}（{os_reason(exc)}）") from exc
    sock = bind(host, port)
    warning = exposure_warning(host)
    if warning:
        console(stderr=True).print(f"[yellow]{escape(warning)}[/yellow]", soft_wrap=True)
    _service_logging()
    console(stderr=True).print(
        f"企业微信模拟器：http://{host}:{sock.getsockname()[1]}（企业 ID {sim.corp_id}，"
        f"应用编号 {sim.agent_id}），消息存到 {target}；按 Ctrl+C 停止", soft_wrap=True, markup=False,
    )
    serve_forever(sim, sock)


def register(app: typer.Typer) -> None:
    for fn in (send, status, retry, run, worker, catcher):
        app.command(fn.__name__)(fn)
    app.command("wecom-sim")(wecom_sim)

"""`dispatch run`: the web app, the scheduler and a delivery worker in one asyncio loop
(and the inbox, reading replies and bounces, when [imap] enabled).

Only a signal ends it. SIGTERM/SIGINT set one stop event; the web server stops
accepting, the scheduler stops ticking, the worker finishes the batch in hand and
releases what it still holds, so nothing stays in 'sending', and the readers' events
the web app queued (dispatch.track.recorder) are written before the process exits. A
second signal is not needed and not special: shutdown is bounded by the SMTP timeout.

Faults don't end it: the worker and the scheduler ride out database outages themselves
(dispatch.faults), and a part that ends anyway (a bug) is logged and started again after
a pause (0.5 s doubling to 10 s; /healthz says it is down meanwhile). The one fatal
error is the web app failing to listen at start (port taken, address wrong): that is
configuration, and the process exits 1 before the worker claims anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator

import uvicorn
from starlette.types import ASGIApp

from dispatch import faults
from dispatch.config import Config
from dispatch.health import Health, Part
from dispatch.net import split_host_port
from dispatch.runtime import Runtime

log = logging.getLogger(__name__)

# A part that ran this long before ending counts as having worked: its pauses start over.
STABLE_SECONDS = 60.0


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the service owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebStartFailed(Exception):
    """uvicorn could not start (it logs why: the port is taken, the address is wrong)."""


# The longest request head (request line and headers) the web app reads. Under h11's own
# default (16 KiB) a longer head was read or refused depending on how the bytes happened
# to arrive (whole in one read: parsed; in pieces: refused), so the same long link
# worked or not by chance. Up to this size it is always read; beyond, always refused.
REQUEST_HEAD_LIMIT = 128 * 1024


def web_config(config: Config, app: ASGIApp) -> uvicorn.Config:
    """How uvicorn serves the web app: where it listens, and whose forwarded headers count.

    X-Forwarded-For/-Proto are believed only from [web] trusted_proxies (a reverse
    proxy); from anyone else the peer's own address stands, so a reader can't pose as
    another address. None trusted: uvicorn's own default (127.0.0.1) is not used either.
    """
    host, port = split_host_port(config.web.listen)
    trusted = list(config.web.trusted_proxies)
    return uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="off",
        proxy_headers=bool(trusted), forwarded_allow_ips=trusted,
        h11_max_incomplete_event_size=REQUEST_HEAD_LIMIT,
    )
async def _serve_web(server: uvicorn.Server, stop: asyncio.Event) -> None:
    """Serve until `stop`; WebStartFailed if the server could not start."""
    serving = asyncio.create_task(_uvicorn(server))
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        await serving
    finally:
        stopping.cancel()


async def _uvicorn(server: uvicorn.Server) -> None:
    try:
        await server.serve()
    except SystemExit:  # uvicorn's way of saying it could not bind
        raise WebStartFailed("the web server could not start") from None


async def supervise(
    name: str, run: Callable[[], Awaitable[None]], stop: asyncio.Event, part: Part | None
) -> None:
    """Run `run()` until `stop`; when it ends otherwise, log it and run it again."""
    loop = asyncio.get_running_loop()
    failures = 0
    while not stop.is_set():
        began = loop.time()
        try:
            await run()
            if stop.is_set():
                return
            why, exc = "it returned", None
        except Exception as error:  # a part's bug must not stop the service
            why, exc = faults.describe(error), error
        failures = 1 if loop.time() - began > STABLE_SECONDS else failures + 1
        pause = faults.pause_after(failures)
        log.error("%s ended unexpectedly (%s); restarting it in %.1fs", name, why, pause,
                  exc_info=exc)
        if part is not None:
            part.down(f"restarting after: {why}")
        await faults.sleep_unless(stop, pause)


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> bool:
    while not server.started and not task.done():
        await asyncio.sleep(0.05)
    return server.started and not task.done()


async def _open_database(runtime: Runtime, stop: asyncio.Event) -> bool:
    """Open and migrate the database before anything starts. A database that is not
    there *yet* (a PostgreSQL server still starting after a reboot, an SQLite file locked
    for a moment) is waited for, logging each try, so the service comes up with it instead
    of exiting; a fault that waiting won't mend (no such database, a refused login, a bad
    URL) is raised at once, for the CLI's one-line message. False: stopped while waiting."""
    from dispatch.db.errors import will_pass

    failures = 0
    while not stop.is_set():
        try:
            await asyncio.to_thread(lambda: runtime.engine)
            return True
        except Exception as exc:
            if not will_pass(exc):
                raise
            failures += 1
            pause = faults.pause_after(failures)
            log.warning("database not available yet (%s); trying again in %.1fs",
                        faults.describe(exc), pause)
            await faults.sleep_unless(stop, pause)
    return False


async def serve(
    runtime: Runtime, *, web: bool = True, scheduler: bool = True, worker: bool = True
) -> None:
    from dispatch.deliver.worker import Worker
    from dispatch.plan.scheduler import Reconciler

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    if not await _open_database(runtime, stop):
        return  # stopped by a signal while waiting for the database
    health = Health()  # its parts exist before /healthz can be asked
    worker_part = health.part("worker") if worker else None
    scheduler_part = (
        health.part("scheduler", max_silence=3 * runtime.config.schedule.tick_seconds)
        if scheduler else None
    )
    inbox = None
    if scheduler and runtime.config.imap.enabled:
        from dispatch.feedback.inbox import Inbox

        inbox = Inbox(runtime, health.part("inbox"))  # refuses settings that can't work
    replier = None
    if runtime.config.wecom.enabled:
        from dispatch.deliver.wecom import check_config
        from dispatch.deliver.wecom_api import WecomApi

        check_config(runtime.config)  # before anything listens: an incomplete [wecom] stops here
        # The callback's replies to readers (退订's confirmation); the worker's channel
        # has its own client, and both share the token through the database.
        replier = WecomApi.from_config(runtime.config, runtime.sessions)
    tasks: list[asyncio.Task[None]] = []
    recorder = None
    if web:
        from dispatch.track.recorder import Recorder
        from dispatch.web.app import create_app

        host, port = split_host_port(runtime.config.web.listen)
        # Readers' opens, clicks and reads, written in batches off the requests; it
        # outlives a restarted web server and is flushed when the service stops.
        recorder = Recorder(runtime.engine, runtime.config.tracking.machine_open_seconds).start()

        def make_server() -> uvicorn.Server:
            app = create_app(runtime, on_event=recorder.record, health=health,
                             wecom_replier=replier)
            return _QuietServer(web_config(runtime.config, app))

        first = make_server()
        first_run = asyncio.create_task(_serve_web(first, stop), name="web")
        if not await _started(first, first_run):
            with contextlib.suppress(WebStartFailed):
                await first_run
            log.error("web app: cannot listen on %s:%d ([web] listen); stopping", host, port)
            recorder.close()
            raise SystemExit(1)
        log.info("web app on http://%s:%d (links use %s)", host, port, runtime.config.web.base_url)
        started = [first_run]

        def web_run() -> Awaitable[None]:
            # The first run is the server started above; a restart binds a new one.
            return started.pop() if started else _serve_web(make_server(), stop)

        tasks.append(asyncio.create_task(supervise("web app", web_run, stop, None), name="web"))
    the_worker = None
    if worker_part is not None:
        the_worker = Worker(runtime, health=worker_part)
        tasks.append(asyncio.create_task(
            supervise("worker", lambda: the_worker.run(stop), stop, worker_part), name="worker"
        ))
    if scheduler_part is not None:
        reconciler = Reconciler(
            runtime, on_planned=the_worker.wake.set if the_worker else None, health=scheduler_part
        )
        tasks.append(asyncio.create_task(
            supervise("scheduler", lambda: reconciler.run(stop), stop, scheduler_part),
            name="scheduler",
        ))
    if inbox is not None:
        the_inbox = inbox
        tasks.append(asyncio.create_task(
            supervise("inbox", lambda: the_inbox.run(stop), stop, the_inbox.health), name="inbox"
        ))

    await stop.wait()
    log.info("stopping")
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for task, result in zip(tasks, results, strict=True):
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            log.error("%s ended with %r", task.get_name(), result)
    if recorder is not None:
        # The web server has stopped: nothing more comes in; write what did.
        await asyncio.to_thread(recorder.close)
    if replier is not None:
        await replier.close()
    log.info("stopped")

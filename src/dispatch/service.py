"""`dispatch run`: the web app, the scheduler and a delivery worker in one asyncio loop.

Signals: SIGTERM/SIGINT set one stop event; the web server stops accepting, the
scheduler stops ticking, the worker finishes the batch in hand and releases what it
still holds, so nothing stays in 'sending'. A second signal is not needed and not
special: shutdown is bounded by the SMTP timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import uvicorn
from starlette.types import ASGIApp

from dispatch.config import Config
from dispatch.context import Context

log = logging.getLogger(__name__)


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the service owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self):  # noqa: ANN201
        yield


def _listen(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def web_config(config: Config, app: ASGIApp) -> uvicorn.Config:
    """How uvicorn serves the web app: where it listens, and whose forwarded headers count.

    X-Forwarded-For/-Proto are believed only from [web] trusted_proxies (a reverse
    proxy); from anyone else the peer's own address stands, so a reader can't pose as
    another address. None trusted: uvicorn's own default (127.0.0.1) is not used either.
    """
    host, port = _listen(config.web.listen)
    trusted = list(config.web.trusted_proxies)
    return uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="off",
        proxy_headers=bool(trusted), forwarded_allow_ips=trusted,
    )


async def serve(
    ctx: Context, *, web: bool = True, scheduler: bool = True, worker: bool = True
) -> None:
    from dispatch.deliver.worker import Worker
    from dispatch.plan.scheduler import Reconciler

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    ctx.engine  # noqa: B018 - open and migrate before anything starts
    tasks: list[asyncio.Task] = []
    server = None
    if web:
        from dispatch.web.app import create_app

        host, port = _listen(ctx.config.web.listen)
        server = _QuietServer(web_config(ctx.config, create_app(ctx)))
        tasks.append(asyncio.create_task(server.serve(), name="web"))
        log.info("web app on http://%s:%d (links use %s)", host, port, ctx.config.web.base_url)
    the_worker = None
    if worker:
        the_worker = Worker(ctx)
        tasks.append(asyncio.create_task(the_worker.run(stop), name="worker"))
    reconciler = None
    if scheduler:
        reconciler = Reconciler(ctx, on_planned=the_worker.wake.set if the_worker else None)
        reconciler.start()

    # Run until a signal, or until a part ends on its own (a crash, or the web port
    # taken): then stop the rest cleanly rather than limp on without it.
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    failed = [t for t in done if t is not stopper]
    for t in failed:
        log.error("%s ended unexpectedly: %r", t.get_name(), t.exception())
    stop.set()
    log.info("stopping")
    if reconciler is not None:
        reconciler.stop()
    if server is not None:
        server.should_exit = True
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for task, result in zip(tasks, results, strict=True):
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            log.error("%s ended with %r", task.get_name(), result)
    log.info("stopped")
    if failed:
        raise SystemExit(1)

"""Who holds a lease: worker names, and telling a dead holder on this machine.

A worker's name is `HOST:PID:RANDOM`. HOST is the host name plus, where Linux shows it,
the pid namespace (`vm~4026531836`): two containers that share a host name (e.g. Docker's
`--network host`) but not their pids are then different hosts, and one never judges the
other's pids. RANDOM tells apart two processes that got the same pid.

A restarted worker reclaims at once the leases of dead holders on its own host
(`dispatch.deliver.leases.expire_dead`) instead of waiting out `lease_seconds`. A holder
is dead only when its host is ours and `kill(pid, 0)` says no such process. A pid that
is alive, even reused by an unrelated process, is left to its lease: it expires as
before, so a reused pid costs time, never a duplicate.
"""

from __future__ import annotations

import functools
import os
import secrets
import socket


@functools.cache
def local_host() -> str:
    host = socket.gethostname()
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return host
    return f"{host}~{namespace.removeprefix('pid:[').removesuffix(']')}"


def worker_name() -> str:
    """Unique per process: host, pid and a random suffix (pids are reused)."""
    return f"{local_host()}:{os.getpid()}:{secrets.token_hex(3)}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def is_dead_here(owner: str) -> bool:
    """True when `owner` names a worker on this host whose process no longer exists."""
    head, _, _suffix = owner.rpartition(":")
    host, _, pid = head.rpartition(":")
    if host != local_host() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    return not pid_alive(int(pid))

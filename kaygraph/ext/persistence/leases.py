"""Leases: a run is written by one process at a time.

The lease owner is ``host:pid:process-start:token``; the lease is live while that process is alive
(checked with ``kill(pid, 0)`` on the same host, so a SIGKILLed writer can be resumed at once) or,
for another host, until ``lease_expires_at``. Record numbers fence writers: a second writer that
slipped past the lease collides on its next record and stops, so histories never interleave.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

from kaygraph.core.exceptions import RunLockedError, RunNotFoundError

from .abc import CheckpointStore, RunInfo

_HOST = socket.gethostname()
_local_owners: set[str] = set()
_local_owners_lock = threading.Lock()


def _process_start(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, Linux), so a reused pid is not mistaken
    for the lease holder; empty where ``/proc`` is unavailable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


_own_start: tuple[int, str, str] = (-1, "", "")
_tokens = itertools.count()


def _own_process_start() -> tuple[int, str, str]:
    """This process's pid, start and random token prefix, made once per pid (a forked child makes
    its own): every durable run asks, and reading ``/proc`` each time was a tenth of a short run's
    cost."""
    global _own_start
    pid = os.getpid()
    if _own_start[0] != pid:
        _own_start = (pid, _process_start(pid), os.urandom(4).hex())
    return _own_start


def new_owner() -> str:
    """A fresh lease owner token for this process: ``host:pid:process-start:random``.

    The token is this process's random prefix and a counter, unique among its writers: not
    ``os.urandom`` per run, which gives up the GIL, so a run waited behind every other thread
    before its first node (the tail of a burst of scheduled fires)."""
    pid, started, prefix = _own_process_start()
    owner = f"{_HOST}:{pid}:{started}:{prefix}{next(_tokens):x}"
    with _local_owners_lock:
        _local_owners.add(owner)
    return owner


def drop_owner(owner: str) -> None:
    """This process no longer writes under ``owner``."""
    with _local_owners_lock:
        _local_owners.discard(owner)


def lease_is_live(info: RunInfo, now: float | None = None) -> bool:
    """Whether the lease on ``info`` still protects a writer.

    Same host: live exactly while the owning process is alive (same pid and start time; in this
    process, while the token is in use), so a killed writer's run can be resumed immediately.
    Another host: live until ``lease_expires_at``.
    """
    owner = info.lease_owner
    if not owner:
        return False
    host, pid_text, started = [*owner.split(":", 3), "", ""][:3]
    if host == _HOST and pid_text.isdigit():
        pid = int(pid_text)
        if pid == os.getpid():
            return owner in _local_owners
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # alive, owned by another user
        return not started or _process_start(pid) in ("", started)
    expires = info.lease_expires_at
    return expires is not None and expires > (time.time() if now is None else now)


def locked_error(info: RunInfo) -> RunLockedError:
    """The error for a run whose lease another live writer holds."""
    expires = info.lease_expires_at
    until = f" (lease expires {time.strftime('%H:%M:%S', time.localtime(expires))})" if expires else ""
    return RunLockedError(
        f"run {info.run_id!r} is being written by another process ({info.lease_owner}){until}. Wait for "
        "it to finish, or stop that process and resume the run; two writers never share a run.",
        run_id=info.run_id,
    )


def stale_writer_error(run_id: str, seq: int) -> RunLockedError:
    """Raised by stores when record ``seq`` exists already: another writer took the run over."""
    return RunLockedError(
        f"checkpoint {seq} of run {run_id!r} was already written by another process, which took the "
        "run over (its lease had expired). This writer stops so the history is not interleaved.",
        run_id=run_id,
    )


def deleted_run_error(run_id: str) -> RunNotFoundError:
    """Raised by stores when a writer appends to a run that was deleted meanwhile."""
    return RunNotFoundError(
        f"run {run_id!r} was deleted while this process was writing it (delete_run(force=True) or "
        "expiry); this writer stops without storing anything more. Start the run again if it is "
        "still needed.",
        run_id=run_id,
    )


def lost_lease_error(run_id: str, seq: int) -> RunLockedError:
    """Raised by stores when the writer of record ``seq`` no longer holds the run's lease."""
    return RunLockedError(
        f"cannot write checkpoint {seq} of run {run_id!r}: this process no longer holds the run's "
        "lease (another process took the run over). This writer stops so the history is not "
        "interleaved.",
        run_id=run_id,
    )


def claim(store: CheckpointStore, info: RunInfo, owner: str, lease_seconds: float) -> bool:
    """Take the lease of the existing run ``info`` for ``owner``; RunLockedError if a live writer has it.

    Returns False if the run disappeared meanwhile (deleted or expired).
    """
    for _ in range(5):
        if lease_is_live(info):
            raise locked_error(info)
        now = time.time()
        changes = {
            "lease_owner": owner,
            "lease_expires_at": now + lease_seconds,
            "status": "running",
            "updated_at": now,
            "expires_at": None,
            "error": None,
            "cancel_requested": None,
        }
        if store.update_run(info.run_id, changes, if_owner=info.lease_owner):
            return True
        current = store.get_run(info.run_id)
        if current is None:
            return False
        info = current
    raise locked_error(info)


def release(store: CheckpointStore, run_id: str, owner: str, changes: Mapping[str, Any]) -> None:
    """Give up the lease of ``owner`` (if it still has it), applying the final ``changes``."""
    try:
        store.update_run(run_id, {**changes, "lease_owner": None, "lease_expires_at": None}, if_owner=owner)
    finally:
        drop_owner(owner)


__all__ = [
    "claim",
    "deleted_run_error",
    "drop_owner",
    "lease_is_live",
    "locked_error",
    "lost_lease_error",
    "new_owner",
    "release",
    "stale_writer_error",
]

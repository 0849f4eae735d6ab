"""Live events for every browser tab from ONE poll loop per dashboard process.

The process running a graph is usually not the dashboard, so events travel through the run's
store. :class:`LiveFeed` polls it on behalf of all subscribers: per tick, one ``changes`` call when
someone watches the runs list and one ``events_after`` call per *run* that someone watches, never
per tab. Fifty tabs on one run cost what one tab costs.

A subscriber joins with the last sequence number it has seen. It first gets the backlog after it
(from the channel's recent-events buffer, or one store read), then every new event; joining and
polling hold the channel's lock, so no event falls between the two or arrives twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from .abc import RunSource

logger = logging.getLogger("kaygraph.ext.ui")

#: Events a subscriber may fall behind before it is dropped (it reconnects and catches up).
QUEUE_LIMIT = 10_000


class Subscription:
    """One subscriber: events to send first (``backlog``), then whatever arrives on ``queue``."""

    def __init__(self, backlog: list[dict[str, Any]], floor: int = -1) -> None:
        self.backlog = backlog
        #: Events up to this sequence number were sent already (in the backlog or before it).
        self.floor = max([floor, *(event["seq"] for event in backlog)]) if backlog else floor
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        #: Set when the subscriber fell too far behind; its stream should end so the client resumes.
        self.overflowed = False

    def push(self, event: dict[str, Any]) -> None:
        seq = event.get("seq")
        if seq is not None:
            if seq <= self.floor:
                return
            self.floor = seq
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait({"type": "overflow"})  # wakes the waiting reader


class _Channel:
    """The subscribers of one run, its last polled sequence number and recent events."""

    def __init__(self, buffer_size: int) -> None:
        self.subscribers: set[Subscription] = set()
        self.last_seq: int | None = None
        self.buffer: collections.deque[dict[str, Any]] = collections.deque(maxlen=buffer_size)
        self.lock = asyncio.Lock()


class LiveFeed:
    """Polls ``source`` every ``interval`` seconds while anyone listens and fans events out."""

    def __init__(self, source: RunSource, *, interval: float = 0.1, buffer_size: int = 2000) -> None:
        self.source = source
        self.interval = interval
        self.buffer_size = buffer_size
        self._channels: dict[str, _Channel] = {}
        self._list_subscribers: set[Subscription] = set()
        self._list_cursor: Any = None
        self._task: asyncio.Task[None] | None = None
        self.polls = 0
        self.started_at = time.time()

    # -- lifecycle -----------------------------------------------------------------------------

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="kaygraph-ui-feed")

    async def stop(self) -> None:
        """Stop polling (the app's shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while self._channels or self._list_subscribers:
            started = time.monotonic()
            try:
                await self.poll_once()
            except Exception:  # a store hiccup must not end the feed: log it and poll again
                logger.exception("kaygraph ui: polling the run store failed; retrying")
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def poll_once(self) -> None:
        """One tick: the runs-list changes (if watched), then new events of each watched run."""
        self.polls += 1
        if self._list_subscribers:
            changed, self._list_cursor = await asyncio.to_thread(self.source.changes, self._list_cursor)
            for row in changed:
                for subscriber in list(self._list_subscribers):
                    subscriber.push({"type": "run", **row})
        for run_id, channel in list(self._channels.items()):
            if not channel.subscribers:
                if not channel.lock.locked():  # nobody is joining it either: forget the run
                    del self._channels[run_id]
                continue
            async with channel.lock:
                await self._advance(run_id, channel)

    async def _advance(self, run_id: str, channel: _Channel) -> None:
        after = -1 if channel.last_seq is None else channel.last_seq
        events = await asyncio.to_thread(self.source.events_after, run_id, after)
        for event in events:
            channel.last_seq = event["seq"]
            channel.buffer.append(event)
            for subscriber in list(channel.subscribers):
                subscriber.push(event)

    # -- subscribing ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def watch_run(self, run_id: str, after: int = -1) -> AsyncIterator[Subscription]:
        """Subscribe to ``run_id``'s events with a sequence number above ``after``."""
        channel = self._channels.get(run_id)
        if channel is None:
            channel = self._channels[run_id] = _Channel(self.buffer_size)
        async with channel.lock:
            backlog = await self._backlog(run_id, channel, after)
            subscription = Subscription(backlog, after)
            channel.subscribers.add(subscription)
        self._ensure_running()
        try:
            yield subscription
        finally:
            channel.subscribers.discard(subscription)  # the poll loop forgets channels left empty

    async def _backlog(self, run_id: str, channel: _Channel, after: int) -> list[dict[str, Any]]:
        """Events in ``(after, channel.last_seq]`` (the channel catches up first when it is new)."""
        if channel.last_seq is None:
            events = await self._read_all(run_id, after)
            channel.last_seq = events[-1]["seq"] if events else after
            channel.buffer.extend(events)
            return events
        if after >= channel.last_seq:
            return []
        if channel.buffer and channel.buffer[0]["seq"] <= after + 1:
            return [event for event in channel.buffer if event["seq"] > after]
        events = await self._read_all(run_id, after)
        return [event for event in events if event["seq"] <= channel.last_seq]

    async def _read_all(self, run_id: str, after: int) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        while True:
            page = await asyncio.to_thread(self.source.events_after, run_id, after)
            events += page
            if len(page) < 500:
                return events
            after = page[-1]["seq"]

    @contextlib.asynccontextmanager
    async def watch_runs(self) -> AsyncIterator[Subscription]:
        """Subscribe to changes of run rows (new runs, status, step counts)."""
        subscription = Subscription([])
        if not self._list_subscribers:
            self._list_cursor = None
        self._list_subscribers.add(subscription)
        if self._list_cursor is None:
            _, self._list_cursor = await asyncio.to_thread(self.source.changes, None)
        self._ensure_running()
        try:
            yield subscription
        finally:
            self._list_subscribers.discard(subscription)

    def stats(self) -> dict[str, Any]:
        """Polls so far and current subscribers, for ``/api/stats``."""
        return {
            "polls": self.polls,
            "interval": self.interval,
            "watched_runs": sum(1 for channel in self._channels.values() if channel.subscribers),
            "run_subscribers": sum(len(channel.subscribers) for channel in self._channels.values()),
            "list_subscribers": len(self._list_subscribers),
        }


__all__ = ["QUEUE_LIMIT", "LiveFeed", "Subscription"]

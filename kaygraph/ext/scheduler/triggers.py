"""When a schedule fires: :func:`cron` (wall-clock times in a timezone, DST-aware) and :func:`every`.

Cron expressions are parsed and iterated by croniter over *wall-clock* times; this module maps each
wall-clock time to real instants with an explicit daylight-saving policy:

* ``nonexistent`` (a wall time skipped by a spring-forward change): ``"shift_forward"`` fires once,
  when the gap ends (``30 1 * * *`` in Europe/London on 2026-03-29 fires at 02:00 BST);
  ``"skip"`` does not fire that day.
* ``ambiguous`` (a wall time that occurs twice on a fall-back day): ``"first"`` fires at its first
  occurrence, ``"last"`` at the second, ``"both"`` at both.

Defaults: an expression whose hour field is fixed (``30 1 * * *``) uses ``shift_forward`` and
``first``, so a daily job runs exactly once every day; one whose hour field is a wildcard or a step
(``*/15 * * * *``, ``0 * * * *``) fires on every real occurrence (``skip`` and ``both``): 92 fires of
``*/15`` on a spring-forward day, 100 on a fall-back day.
"""

from __future__ import annotations

import abc
import datetime as _dt
import functools
import heapq
import math
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kaygraph.utils.imports import require_package

from .errors import InvalidTriggerError

_croniter = require_package("croniter", "scheduler", "Cron schedules")

UTC = _dt.timezone.utc
#: Cron fields in order; a sixth, leading field is seconds.
FIELDS = ("minute", "hour", "day of month", "month", "day of week")
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
NONEXISTENT = ("shift_forward", "skip")
AMBIGUOUS = ("first", "last", "both")
# No zone has moved its clocks by more than this at once; bounds how far wall order and instant
# order can disagree around a transition.
_MAX_SHIFT = 3 * 3600
#: How many answers a cron trigger's ``next_after`` remembers: the schedules sharing a trigger ask
#: about the same few instants at a time, and thousands of distinct triggers must stay small.
_MEMO_SIZE = 32


def resolve_timezone(name: str | _dt.tzinfo | None) -> ZoneInfo:
    """The IANA zone ``name``; an unknown name raises :class:`InvalidTriggerError` with a did-you-mean."""
    if name is None or name is UTC:
        return ZoneInfo("UTC")
    if isinstance(name, ZoneInfo):
        return name
    if not isinstance(name, str):
        raise InvalidTriggerError(
            f"timezone must be an IANA name such as 'Europe/London', got {name!r} ({type(name).__name__})",
            field="timezone",
            value=name,
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    import difflib
    from zoneinfo import available_timezones

    known = {zone.lower(): zone for zone in available_timezones()}
    close = [known[match] for match in difflib.get_close_matches(name.lower(), known, n=3, cutoff=0.6)]
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise InvalidTriggerError(
        f"unknown timezone {name!r}.{hint} Use an IANA name such as 'Europe/London' or 'UTC' "
        "(see zoneinfo.available_timezones()).",
        field="timezone",
        value=name,
    )


def _to_timestamp(value: _dt.datetime | float, what: str) -> float:
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidTriggerError(
                f"{what} must be a timezone-aware datetime, got the naive {value.isoformat()!r}; "
                "add tzinfo, e.g. datetime.now(timezone.utc)",
                field=what,
                value=value,
            )
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise InvalidTriggerError(f"{what} must be a datetime, got {value!r}", field=what, value=value)


class Trigger(abc.ABC):
    """When a schedule fires. Stored as :meth:`to_dict`; rebuilt with :func:`trigger_from_dict`."""

    kind: ClassVar[str] = ""

    @abc.abstractmethod
    def next_after(self, timestamp: float) -> float | None:
        """The first fire instant strictly after ``timestamp`` (Unix seconds), None if there is none."""

    @abc.abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description that :func:`trigger_from_dict` turns back into this trigger."""

    @abc.abstractmethod
    def describe(self) -> str:
        """One line for listings: ``cron '30 1 * * *' (Europe/London)``, ``every 5m``."""

    #: The zone fire times are shown in.
    zone: ZoneInfo = ZoneInfo("UTC")

    def fires(self, after: float) -> Iterator[tuple[float, str]]:
        """Fire instants after ``after`` in order, each with a DST note ("" when none applies)."""
        current = after
        while True:
            following = self.next_after(current)
            if following is None:
                return
            current = following
            yield current, ""

    def next_fire_times(self, after: _dt.datetime, count: int) -> list[_dt.datetime]:
        """The next ``count`` fire times strictly after the aware datetime ``after``, in this
        trigger's timezone (aware datetimes, so the UTC offset of each is explicit)."""
        return [when for when, _ in self.next_fires_explained(after, count)]

    def next_fires_explained(self, after: _dt.datetime, count: int) -> list[tuple[_dt.datetime, str]]:
        """:meth:`next_fire_times` with a DST note per fire (for ``kaygraph schedules next``)."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidTriggerError(f"count must be an int >= 0, got {count!r}", field="count", value=count)
        start = _to_timestamp(after, "after")
        result: list[tuple[_dt.datetime, str]] = []
        if count == 0:
            return result
        for instant, note in self.fires(start):
            result.append((_dt.datetime.fromtimestamp(instant, self.zone), note))
            if len(result) >= count:
                break
        return result

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Trigger) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.to_dict().items())))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


class CronTrigger(Trigger):
    """A cron expression in a timezone: 5 fields, or 6 with seconds first, or an ``@daily`` alias.

    Made by :func:`cron`. Daylight-saving days follow ``nonexistent`` and ``ambiguous`` (see the
    module documentation); None picks the default for the expression's hour field.
    """

    kind = "cron"

    def __init__(
        self,
        expression: str,
        *,
        timezone: str | _dt.tzinfo | None = None,
        nonexistent: str | None = None,
        ambiguous: str | None = None,
    ) -> None:
        if not isinstance(expression, str):
            raise InvalidTriggerError(
                f"a cron expression must be a string, got {expression!r}",
                field="expression",
                value=expression,
            )
        self.expression = " ".join(expression.split())
        self.zone = resolve_timezone(_default_timezone() if timezone is None else timezone)
        fields = list(_parse_cached(self.expression))
        self._seconds = len(fields) == 6
        hour = fields[2 if self._seconds else 1]
        hour_varies = "*" in hour or "/" in hour
        for name, value, choices in (
            ("nonexistent", nonexistent, NONEXISTENT),
            ("ambiguous", ambiguous, AMBIGUOUS),
        ):
            if value is not None and value not in choices:
                raise InvalidTriggerError(
                    f"cron {name}={value!r} is not a DST policy; use one of {', '.join(map(repr, choices))}",
                    field=name,
                    value=value,
                )
        self.nonexistent = nonexistent or ("skip" if hour_varies else "shift_forward")
        self.ambiguous = ambiguous or ("both" if hour_varies else "first")
        self._explicit = {"nonexistent": nonexistent, "ambiguous": ambiguous}
        self._croniter_expression = " ".join(fields)
        self._next_memo: dict[float, float | None] = {}
        if _never_fires(self._croniter_expression):
            raise InvalidTriggerError(
                f"cron expression {self.expression!r} never fires (no date matches it, e.g. 30 February)",
                field="expression",
                value=self.expression,
            )

    @staticmethod
    def _parse(expression: str) -> list[str]:
        """The expression's fields, each checked alone so an error names the field and its value."""
        if expression.startswith("@"):
            alias = ALIASES.get(expression.lower())
            if alias is None:
                import difflib

                close = difflib.get_close_matches(expression.lower(), ALIASES, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise InvalidTriggerError(
                    f"unknown cron alias {expression!r}.{hint} Aliases: {', '.join(ALIASES)}",
                    field="expression",
                    value=expression,
                )
            return alias.split()
        fields = expression.split()
        if len(fields) not in (5, 6):
            raise InvalidTriggerError(
                f"cron expression {expression!r} has {len(fields)} field(s); it needs 5 "
                "(minute hour day-of-month month day-of-week) or 6 with seconds first, "
                "e.g. '30 1 * * *' or '*/10 * * * * *'",
                field="expression",
                value=expression,
            )
        names = ("second", *FIELDS) if len(fields) == 6 else FIELDS
        for index, (name, value) in enumerate(zip(names, fields, strict=True)):
            probe = ["*"] * len(fields)
            probe[index] = value
            try:
                _croniter.croniter(" ".join(probe), second_at_beginning=True)
            except (_croniter.CroniterError, ValueError, KeyError, IndexError) as exc:
                raise InvalidTriggerError(
                    f"cron expression {expression!r}: the {name} field {value!r} is not valid "
                    f"({_croniter_reason(exc)}); {_FIELD_HELP[name]}",
                    field=name,
                    value=value,
                ) from None
        return fields

    # -- iteration over instants ------------------------------------------------------------------

    def _offset(self, timestamp: float) -> float:
        offset = _dt.datetime.fromtimestamp(timestamp, self.zone).utcoffset()
        return offset.total_seconds() if offset is not None else 0.0

    def _resolve(self, wall: _dt.datetime) -> list[tuple[float, str]]:
        """The instants the wall-clock time ``wall`` fires at under this trigger's DST policy."""
        first = wall.replace(tzinfo=self.zone, fold=0).timestamp()
        second = wall.replace(tzinfo=self.zone, fold=1).timestamp()
        if first == second:
            return [(first, "")]
        text = wall.strftime("%H:%M:%S" if self._seconds else "%H:%M")
        if first < second:  # fall back: the wall time happens twice
            if self.ambiguous == "first":
                return [(first, f"DST: {text} occurs twice today; fires at its first occurrence")]
            if self.ambiguous == "last":
                return [(second, f"DST: {text} occurs twice today; fires at its second occurrence")]
            return [
                (first, f"DST: {text} occurs twice today (first occurrence)"),
                (second, f"DST: {text} occurs twice today (second occurrence)"),
            ]
        # Spring forward: the wall time does not exist; `second` is before the gap, `first` after.
        if self.nonexistent == "skip":
            return []
        after_offset = self._offset(first)
        low, high = math.floor(second), math.ceil(first)
        while low < high:  # the first second with the new offset: the end of the gap
            middle = (low + high) // 2
            if self._offset(middle) == after_offset:
                high = middle
            else:
                low = middle + 1
        return [(float(low), f"DST: {text} does not exist today; fires when the gap ends")]

    def fires(self, after: float) -> Iterator[tuple[float, str]]:
        offsets = [self._offset(after + delta) for delta in (-_MAX_SHIFT, 0, _MAX_SHIFT)]
        # Wall times before after + min(offset) map to instants before `after`.
        start = _dt.datetime.fromtimestamp(after + min(offsets), UTC).replace(tzinfo=None)
        iterator = _croniter.croniter(
            self._croniter_expression, start, second_at_beginning=True, ret_type=_dt.datetime
        )
        pending: list[tuple[float, str]] = []
        last: float | None = None
        while True:
            try:
                wall = iterator.get_next(_dt.datetime)
            except _croniter.CroniterBadDateError:
                break
            for instant, note in self._resolve(wall):
                if instant > after:
                    heapq.heappush(pending, (instant, note))
            wall_seconds = wall.replace(tzinfo=UTC).timestamp()
            # Later wall times map to instants after wall - (largest offset nearby): those before are final.
            horizon = wall_seconds - max(
                self._offset(wall_seconds - _MAX_SHIFT), self._offset(wall_seconds + _MAX_SHIFT)
            )
            while pending and pending[0][0] <= horizon:
                instant, note = heapq.heappop(pending)
                if instant != last:  # several nonexistent times can shift to the same gap end
                    last = instant
                    yield instant, note
        while pending:
            instant, note = heapq.heappop(pending)
            if instant != last:
                last = instant
                yield instant, note

    def next_after(self, timestamp: float) -> float | None:
        # Memoised: the schedules sharing this trigger ask for the same instants (a fresh croniter
        # per question was most of a scheduler pass). Bounded; a race only recomputes an entry.
        memo = self._next_memo
        if timestamp in memo:
            return memo[timestamp]
        instant = next((when for when, _ in self.fires(timestamp)), None)
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        memo[timestamp] = instant
        return instant

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": "cron", "expression": self.expression, "timezone": self.zone.key}
        data.update({key: value for key, value in self._explicit.items() if value is not None})
        return data

    def describe(self) -> str:
        return f"cron {self.expression!r} ({self.zone.key})"


@functools.lru_cache(maxsize=1024)
def _parse_cached(expression: str) -> tuple[str, ...]:
    """:meth:`CronTrigger._parse`, cached: thousands of schedules share a few expressions."""
    return tuple(CronTrigger._parse(expression))


@functools.lru_cache(maxsize=1024)
def _never_fires(fields: str) -> bool:
    """Whether no date ever matches (``0 0 30 2 *``); the same in every timezone."""
    try:
        iterator = _croniter.croniter(fields, _dt.datetime(2000, 1, 1), second_at_beginning=True)
        iterator.get_next(_dt.datetime)
    except _croniter.CroniterBadDateError:
        return True
    return False


def _croniter_reason(exc: BaseException) -> str:
    text = str(exc)
    if "out of range" in text:
        return "out of range"
    if isinstance(exc, _croniter.CroniterNotAlphaError) or "not acceptable" in text:
        return "not a number, range, list, step or name cron accepts"
    return text or type(exc).__name__


_FIELD_HELP = {
    "second": "seconds are 0-59",
    "minute": "minutes are 0-59",
    "hour": "hours are 0-23",
    "day of month": "days of the month are 1-31 (or L)",
    "month": "months are 1-12 or JAN-DEC",
    "day of week": "days of the week are 0-6 (0 = Sunday) or SUN-SAT",
}


def _default_timezone() -> str:
    try:
        from kaygraph.config import get_config
    except ImportError:
        return "UTC"
    return str(get_config().get("scheduler.timezone", "UTC"))


class IntervalTrigger(Trigger):
    """Every fixed amount of elapsed time, on a grid anchored at ``start`` (default: the Unix epoch,
    so ``every(minutes=5)`` fires at :00, :05, ... UTC on every replica alike). Elapsed time ignores
    DST: use :func:`cron` for wall-clock times. Made by :func:`every`."""

    kind = "every"

    def __init__(self, seconds: float, *, start: _dt.datetime | float | None = None) -> None:
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not math.isfinite(seconds)
            or seconds <= 0
        ):
            raise InvalidTriggerError(
                f"every() needs a positive interval, got {seconds!r} seconds; e.g. every(minutes=5)",
                field="interval",
                value=seconds,
            )
        self.interval = float(seconds)
        self.start = 0.0 if start is None else _to_timestamp(start, "start")

    def next_after(self, timestamp: float) -> float | None:
        if timestamp < self.start:
            return self.start
        steps = math.floor((timestamp - self.start) / self.interval) + 1
        instant = self.start + steps * self.interval
        return instant if instant > timestamp else instant + self.interval

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": "every", "seconds": self.interval}
        if self.start:
            data["start"] = self.start
        return data

    def describe(self) -> str:
        remaining = self.interval
        parts = []
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if remaining >= size:
                whole = int(remaining // size)
                parts.append(f"{whole}{unit}")
                remaining -= whole * size
        if remaining or not parts:
            parts.append(f"{remaining:g}s")
        return "every " + "".join(parts)


def cron(
    expression: str,
    *,
    timezone: str | _dt.tzinfo | None = None,
    nonexistent: str | None = None,
    ambiguous: str | None = None,
) -> CronTrigger:
    """A cron trigger: ``cron("30 1 * * *", timezone="Europe/London")``.

    ``timezone`` defaults to ``scheduler.timezone`` (UTC). ``nonexistent`` (``shift_forward``,
    ``skip``) and ``ambiguous`` (``first``, ``last``, ``both``) choose what DST-change days do.
    """
    return CronTrigger(expression, timezone=timezone, nonexistent=nonexistent, ambiguous=ambiguous)


def every(
    *,
    weeks: float = 0,
    days: float = 0,
    hours: float = 0,
    minutes: float = 0,
    seconds: float = 0,
    start: _dt.datetime | None = None,
) -> IntervalTrigger:
    """An interval trigger: ``every(minutes=5)``; fires on a grid anchored at ``start`` (default: epoch)."""
    total = weeks * 604800 + days * 86400 + hours * 3600 + minutes * 60 + seconds
    return IntervalTrigger(total, start=start)


def trigger_from_dict(data: Mapping[str, Any]) -> Trigger:
    """The trigger :meth:`Trigger.to_dict` described."""
    kind = data.get("type")
    if kind == "cron":
        return CronTrigger(
            data["expression"],
            timezone=data.get("timezone"),
            nonexistent=data.get("nonexistent"),
            ambiguous=data.get("ambiguous"),
        )
    if kind == "every":
        return IntervalTrigger(data["seconds"], start=data.get("start"))
    raise InvalidTriggerError(f"unknown trigger type {kind!r} in {dict(data)!r}", field="type", value=kind)


def parse_trigger(text: str, *, timezone: str | None = None) -> Trigger:
    """A trigger from command-line text: a cron expression or alias, or ``every 5m`` / ``every 30s``."""
    words = text.split()
    if words and words[0] == "every":
        spec = "".join(words[1:])
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
        import re

        parts = re.findall(r"(\d+(?:\.\d+)?)([smhdw])", spec)
        if not parts or "".join(number + unit for number, unit in parts) != spec:
            raise InvalidTriggerError(
                f"cannot read the interval {text!r}; write e.g. 'every 30s', 'every 5m', 'every 1h30m'",
                field="interval",
                value=text,
            )
        return IntervalTrigger(sum(float(number) * units[unit] for number, unit in parts))
    return CronTrigger(text, timezone=timezone)


__all__ = [
    "AMBIGUOUS",
    "NONEXISTENT",
    "CronTrigger",
    "IntervalTrigger",
    "Trigger",
    "cron",
    "every",
    "parse_trigger",
    "resolve_timezone",
    "trigger_from_dict",
]

"""The scheduler's errors: each names the schedule, trigger field or store it is about."""

from __future__ import annotations

from typing import Any

from kaygraph.core.exceptions import KayGraphError


class SchedulerError(KayGraphError):
    """Base class of the scheduler extension's errors."""

    def __init__(self, message: str, *, schedule: str | None = None) -> None:
        super().__init__(message)
        self.schedule = schedule


class ScheduleNotFoundError(SchedulerError, KeyError):
    """No schedule of that name is stored."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ScheduleExistsError(SchedulerError):
    """``add`` of a name that is already stored (pass ``replace=True`` to overwrite it)."""


class InvalidTriggerError(SchedulerError, ValueError):
    """A cron expression, timezone or interval that cannot be used; names the field and value."""

    def __init__(self, message: str, *, field: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


class ScheduleStoreError(SchedulerError):
    """The schedule store cannot be opened or reached (the URL is shown without its password)."""


__all__ = [
    "InvalidTriggerError",
    "ScheduleExistsError",
    "ScheduleNotFoundError",
    "ScheduleStoreError",
    "SchedulerError",
]

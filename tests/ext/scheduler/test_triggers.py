"""Triggers: cron parsing errors, DST policies (hand tables and cronsim as the oracle), intervals."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from kaygraph.ext.scheduler import InvalidTriggerError, cron, every
from kaygraph.ext.scheduler.triggers import parse_trigger, trigger_from_dict

UTC = dt.timezone.utc


def fires_on(trigger, day: dt.date, zone: str) -> list[dt.datetime]:
    """Every fire of ``trigger`` whose local date is ``day``."""
    tz = ZoneInfo(zone)
    start = dt.datetime(day.year, day.month, day.day, tzinfo=tz) - dt.timedelta(hours=1)
    return [when for when in trigger.next_fire_times(start, 400) if when.astimezone(tz).date() == day]


# -- the DST examples -----------------------------------------------------------------


def test_spring_forward_fixed_time_fires_once_when_the_gap_ends() -> None:
    fires = fires_on(cron("30 1 * * *", timezone="Europe/London"), dt.date(2026, 3, 29), "Europe/London")
    assert [when.isoformat() for when in fires] == ["2026-03-29T02:00:00+01:00"]


def test_fall_back_fixed_time_fires_once_at_its_first_occurrence() -> None:
    fires = fires_on(cron("30 1 * * *", timezone="Europe/London"), dt.date(2026, 10, 25), "Europe/London")
    assert [when.isoformat() for when in fires] == ["2026-10-25T01:30:00+01:00"]


@pytest.mark.parametrize(("day", "count"), [(dt.date(2026, 3, 29), 92), (dt.date(2026, 10, 25), 100)])
def test_wildcard_hours_fire_on_every_real_occurrence(day: dt.date, count: int) -> None:
    fires = fires_on(cron("*/15 * * * *", timezone="Europe/London"), day, "Europe/London")
    assert len(fires) == count
    assert len({when.timestamp() for when in fires}) == count  # all distinct instants
    assert [when.timestamp() for when in fires] == sorted(when.timestamp() for when in fires)


def test_hourly_on_fall_back_day_fires_at_both_one_oclocks() -> None:
    fires = fires_on(cron("0 * * * *", timezone="Europe/London"), dt.date(2026, 10, 25), "Europe/London")
    assert [when.strftime("%H:%M%z") for when in fires[:4]] == [
        "00:00+0100",
        "01:00+0100",
        "01:00+0000",
        "02:00+0000",
    ]
    assert len(fires) == 25


# -- other policies, and a hand table for a fixed hour with a step in the minutes ------------------


def test_skip_policy_does_not_fire_on_the_spring_day() -> None:
    trigger = cron("30 1 * * *", timezone="Europe/London", nonexistent="skip")
    assert fires_on(trigger, dt.date(2026, 3, 29), "Europe/London") == []
    assert len(fires_on(trigger, dt.date(2026, 3, 30), "Europe/London")) == 1


@pytest.mark.parametrize(
    ("ambiguous", "expected"),
    [
        ("first", ["01:30+0100"]),
        ("last", ["01:30+0000"]),
        ("both", ["01:30+0100", "01:30+0000"]),
    ],
)
def test_ambiguous_policies(ambiguous: str, expected: list[str]) -> None:
    trigger = cron("30 1 * * *", timezone="Europe/London", ambiguous=ambiguous)
    fires = fires_on(trigger, dt.date(2026, 10, 25), "Europe/London")
    assert [when.strftime("%H:%M%z") for when in fires] == expected


def test_fixed_hour_with_minute_steps_hand_table() -> None:
    trigger = cron("*/20 1 * * *", timezone="Europe/London")
    spring = fires_on(trigger, dt.date(2026, 3, 29), "Europe/London")
    assert [when.strftime("%H:%M%z") for when in spring] == ["02:00+0100"]  # three shifted times, one fire
    fall = fires_on(trigger, dt.date(2026, 10, 25), "Europe/London")
    assert [when.strftime("%H:%M%z") for when in fall] == ["01:00+0100", "01:20+0100", "01:40+0100"]


@pytest.mark.parametrize(
    ("zone", "day", "expression", "expected"),
    [
        # New York springs forward at 02:00 -> 03:00.
        ("America/New_York", dt.date(2026, 3, 8), "30 2 * * *", ["03:00-0400"]),
        ("America/New_York", dt.date(2026, 11, 1), "30 1 * * *", ["01:30-0400"]),
        # Sydney (southern hemisphere): forward in October, back in April.
        ("Australia/Sydney", dt.date(2026, 10, 4), "15 2 * * *", ["03:00+1100"]),
        ("Australia/Sydney", dt.date(2026, 4, 5), "15 2 * * *", ["02:15+1100"]),
        # Lord Howe moves its clocks by 30 minutes.
        ("Australia/Lord_Howe", dt.date(2026, 10, 4), "10 2 * * *", ["02:30+1100"]),
        # Santiago skips midnight: the day starts at 01:00.
        ("America/Santiago", dt.date(2026, 9, 6), "0 0 * * *", ["01:00-0300"]),
        # No DST at all.
        ("Asia/Kolkata", dt.date(2026, 3, 29), "30 1 * * *", ["01:30+0530"]),
    ],
)
def test_hand_computed_table_for_several_zones(
    zone: str, day: dt.date, expression: str, expected: list[str]
) -> None:
    fires = fires_on(cron(expression, timezone=zone), day, zone)
    assert [when.astimezone(ZoneInfo(zone)).strftime("%H:%M%z") for when in fires] == expected


# -- cronsim as the oracle: a whole year, several zones -------------------------------------------

ORACLE_ZONES = ["Europe/London", "America/New_York", "Australia/Sydney", "Europe/Berlin", "America/Santiago"]
# Fixed hour and minute, or wildcard/step hours: the classes where cronsim and this module agree
# by design (cronsim fires a fixed hour with minute steps on both fall-back passes; we fire once).
ORACLE_EXPRESSIONS = [
    "30 1 * * *",
    "0 9 * * MON-FRI",
    "15 2 * * *",
    "*/15 * * * *",
    "0 * * * *",
    "45 */3 * * *",
]


@pytest.mark.parametrize("zone", ORACLE_ZONES)
@pytest.mark.parametrize("expression", ORACLE_EXPRESSIONS)
def test_matches_cronsim_around_every_dst_change_of_2026(zone: str, expression: str) -> None:
    from cronsim import CronSim

    tz = ZoneInfo(zone)
    trigger = cron(expression, timezone=zone)
    # Every day whose UTC offset differs from the day before, +- 1 day.
    days = []
    day = dt.datetime(2026, 1, 1, 12, tzinfo=tz)
    for _ in range(365):
        following = day + dt.timedelta(days=1)
        if following.utcoffset() != day.utcoffset():
            days.append(day - dt.timedelta(days=1))
        day = following
    assert days, f"{zone} has no DST change in 2026"
    for start in days:
        oracle = CronSim(expression, start)
        expected = [next(oracle) for _ in range(60)]
        ours = trigger.next_fire_times(start, 60)
        assert [w.timestamp() for w in ours] == [w.timestamp() for w in expected], (zone, expression, start)


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "field", "value"),
    [
        ("61 * * * *", "minute", "61"),
        ("* 25 * * *", "hour", "25"),
        ("* * 32 * *", "day of month", "32"),
        ("* * * 13 *", "month", "13"),
        ("* * * * FOO", "day of week", "FOO"),
        ("99 * * * * *", "second", "99"),
    ],
)
def test_bad_field_is_named_with_its_value(expression: str, field: str, value: str) -> None:
    with pytest.raises(InvalidTriggerError) as caught:
        cron(expression)
    assert caught.value.field == field
    assert caught.value.value == value
    assert f"the {field} field {value!r}" in str(caught.value)


def test_wrong_number_of_fields() -> None:
    with pytest.raises(InvalidTriggerError, match="has 3 field"):
        cron("1 2 3")


def test_unknown_alias_suggests_the_right_one() -> None:
    with pytest.raises(InvalidTriggerError, match="Did you mean '@daily'"):
        cron("@dayly")


def test_expression_that_never_fires() -> None:
    with pytest.raises(InvalidTriggerError, match="never fires"):
        cron("0 0 30 2 *")


def test_unknown_timezone_did_you_mean() -> None:
    with pytest.raises(InvalidTriggerError, match="Did you mean 'Europe/London'") as caught:
        cron("* * * * *", timezone="Europe/Londn")
    assert caught.value.field == "timezone"


def test_bad_policy_names_the_choices() -> None:
    with pytest.raises(InvalidTriggerError, match="'shift_forward', 'skip'"):
        cron("30 1 * * *", nonexistent="later")


def test_naive_after_is_refused() -> None:
    with pytest.raises(InvalidTriggerError, match="timezone-aware"):
        cron("* * * * *").next_fire_times(dt.datetime(2026, 1, 1), 1)


# -- aliases, seconds, intervals, round trips -------------------------------------------------


def test_aliases_and_seconds() -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=UTC)
    assert cron("@daily").next_fire_times(start, 2)[1] == dt.datetime(2026, 1, 3, tzinfo=UTC)
    assert cron("@hourly").next_fire_times(start, 1)[0] == dt.datetime(2026, 1, 1, 1, tzinfo=UTC)
    assert [w.second for w in cron("*/20 * * * * *").next_fire_times(start, 3)] == [20, 40, 0]


def test_next_fire_times_are_aware_and_strictly_after() -> None:
    start = dt.datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
    fires = cron("0 9 * * *").next_fire_times(start, 3)
    assert all(w.tzinfo is not None for w in fires)
    assert fires[0] == dt.datetime(2026, 5, 2, 9, 0, tzinfo=UTC)


def test_every_is_on_a_grid_anchored_at_the_epoch() -> None:
    start = dt.datetime(2026, 1, 1, 0, 3, 7, tzinfo=UTC)
    assert [w.strftime("%H:%M:%S") for w in every(minutes=5).next_fire_times(start, 2)] == [
        "00:05:00",
        "00:10:00",
    ]
    anchored = every(seconds=90, start=dt.datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC))
    assert [w.strftime("%M:%S") for w in anchored.next_fire_times(start, 2)] == ["03:10", "04:40"]
    with pytest.raises(InvalidTriggerError, match="positive interval"):
        every(seconds=0)


@pytest.mark.parametrize(
    "trigger",
    [
        cron("30 1 * * *", timezone="Europe/London", ambiguous="both"),
        every(hours=1, minutes=30),
        cron("@weekly"),
    ],
)
def test_round_trip_through_dict(trigger) -> None:
    assert trigger_from_dict(trigger.to_dict()) == trigger


def test_parse_trigger_from_cli_text() -> None:
    assert parse_trigger("every 1h30m").interval == 5400
    assert parse_trigger("*/5 * * * *").expression == "*/5 * * * *"
    with pytest.raises(InvalidTriggerError, match="every 30s"):
        parse_trigger("every soon")


def test_dst_notes_explain_shifted_and_repeated_fires() -> None:
    trigger = cron("30 1 * * *", timezone="Europe/London")
    notes = trigger.next_fires_explained(dt.datetime(2026, 3, 28, 12, tzinfo=UTC), 2)
    assert notes[0][1] == "DST: 01:30 does not exist today; fires when the gap ends"
    notes = trigger.next_fires_explained(dt.datetime(2026, 10, 24, 12, tzinfo=UTC), 1)
    assert "occurs twice" in notes[0][1]


def test_next_after_answers_from_its_memo_exactly_as_it_computes(monkeypatch) -> None:
    from kaygraph.ext.scheduler import triggers

    trigger = cron("30 1 * * *", timezone="Europe/London")  # across the spring-forward gap
    start = dt.datetime(2026, 3, 26, tzinfo=dt.timezone.utc).timestamp()
    moments = [start + hours * 3600 for hours in range(0, 24 * 5, 5)]
    computed = [next(iter(trigger.fires(moment)))[0] for moment in moments]
    assert [trigger.next_after(moment) for moment in moments] == computed
    assert [trigger.next_after(moment) for moment in moments] == computed  # from the memo
    monkeypatch.setattr(triggers, "_MEMO_SIZE", 3)  # a full memo starts over, answers unchanged
    fresh = cron("30 1 * * *", timezone="Europe/London")
    assert [fresh.next_after(moment) for moment in moments * 2] == computed * 2
    assert len(fresh._next_memo) <= 3

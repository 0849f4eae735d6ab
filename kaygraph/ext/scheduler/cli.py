"""``kaygraph scheduler run`` and ``kaygraph schedules list|add|remove|pause|resume|trigger|next|fires``."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
from typing import Any

from .abc import CATCHUP_POLICIES, OVERLAP_POLICIES


def register(subparsers: Any) -> None:
    """Add the ``scheduler`` and ``schedules`` commands to the ``kaygraph`` parser."""
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument("--store", help="schedule store URL (default: scheduler.url / .kaygraph/schedules.db)")

    scheduler = subparsers.add_parser("scheduler", help="run the scheduler")
    commands = scheduler.add_subparsers(dest="scheduler_command", metavar="SUBCOMMAND")
    run = commands.add_parser("run", parents=[store], help="run due fires until Ctrl-C / SIGTERM")
    run.add_argument("--runs", help="store URL of the durable runs (default: next to the schedules)")
    run.add_argument("--max-workers", type=int, help="fires run at once (default: scheduler.max_workers)")
    run.add_argument(
        "--duration", type=float, help="stop cleanly after this many seconds (demos, batch windows)"
    )
    run.set_defaults(func=_run)
    scheduler.set_defaults(func=lambda args: scheduler.print_help())

    schedules = subparsers.add_parser("schedules", help="add, list and manage schedules")
    commands = schedules.add_subparsers(dest="schedules_command", metavar="SUBCOMMAND")
    listing = commands.add_parser("list", parents=[store], help="every schedule with its next fire")
    listing.add_argument("--json", action="store_true", help="print JSON lines")
    listing.set_defaults(func=_list)

    add = commands.add_parser("add", parents=[store], help="add a schedule")
    add.add_argument("name")
    add.add_argument(
        "graph_ref", help="the graph, as package.module:attr (a Graph or a function returning one)"
    )
    when = add.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help="cron expression: '30 1 * * *', 6 fields with seconds first, or @daily")
    when.add_argument("--every", help="interval: 30s, 5m, 1h30m, 1d")
    add.add_argument("--timezone", help="timezone of --cron (default: scheduler.timezone)")
    add.add_argument("--overlap", choices=OVERLAP_POLICIES, default="skip")
    add.add_argument("--catchup", choices=CATCHUP_POLICIES, default="latest")
    add.add_argument("--max-age", type=float, help="missed fires older than this many seconds never run")
    add.add_argument("--jitter", type=float, default=0.0, help="start each fire up to this many seconds late")
    add.add_argument("--shared", help="the shared store of each fire, as a JSON object")
    add.add_argument("--params", help="graph params of each fire, as a JSON object")
    add.add_argument("--paused", action="store_true", help="add it paused")
    add.add_argument("--replace", action="store_true", help="overwrite a schedule of that name")
    add.set_defaults(func=_add)

    for name, text in (
        ("remove", "delete a schedule and its pending fires"),
        ("pause", "stop firing (running fires go on)"),
        ("resume", "fire again from the next fire time"),
        ("trigger", "run it now, once"),
    ):
        command = commands.add_parser(name, parents=[store], help=text)
        command.add_argument("name")
        command.set_defaults(func=_simple, action=name)

    upcoming = commands.add_parser(
        "next", parents=[store], help="the coming fire times, with UTC offsets and DST notes"
    )
    upcoming.add_argument("name")
    upcoming.add_argument("-n", type=int, default=10, help="how many (default 10)")
    upcoming.set_defaults(func=_next)

    history = commands.add_parser("fires", parents=[store], help="recent fires, newest first")
    history.add_argument("name", nargs="?")
    history.add_argument("--limit", type=int, default=20)
    history.set_defaults(func=_fires)
    schedules.set_defaults(func=lambda args: schedules.print_help())


def _scheduler(args: Any, **options: Any) -> Any:
    # Graph references name modules of the project the command runs in, as `python -m` would see them.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    from .scheduler import Scheduler

    return Scheduler(args.store, **options)


def _when(timestamp: float | None, zone: Any) -> str:
    if timestamp is None:
        return "-"
    return _dt.datetime.fromtimestamp(timestamp, zone).isoformat(sep=" ", timespec="seconds")


def _run(args: Any) -> int:
    import logging

    # The scheduler's own lines (fire started, succeeded, failed) on stdout; the root logger, and
    # so every node's step records, is left to the application's own logging set-up.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    scheduler_log = logging.getLogger("kaygraph.scheduler")
    scheduler_log.setLevel(logging.INFO)
    scheduler_log.addHandler(handler)
    scheduler_log.propagate = False
    options: dict[str, Any] = {}
    if args.runs:
        options["runs"] = args.runs
    if args.max_workers:
        options["max_workers"] = args.max_workers
    with _scheduler(args, **options) as scheduler:
        print(f"scheduler running on {scheduler.store.describe()} (Ctrl-C to stop)", flush=True)
        from kaygraph.utils.observe import observe_from_config

        observing = observe_from_config()
        if observing:
            print(observing, flush=True)
        if args.duration is not None:
            import threading

            timer = threading.Timer(args.duration, scheduler.stop)
            timer.daemon = True
            timer.start()
        scheduler.run()
    return 0


def _list(args: Any) -> int:
    from .triggers import trigger_from_dict

    with _scheduler(args) as scheduler:
        schedules = scheduler.list()
        rows = []
        for schedule in schedules:
            trigger = trigger_from_dict(schedule.trigger)
            last = scheduler.fires(schedule.name, limit=1)
            row = {
                "name": schedule.name,
                "trigger": trigger.describe(),
                "graph": schedule.graph_ref,
                "state": "paused" if schedule.paused else "active",
                "next": "-" if schedule.paused else _when(schedule.next_fire_at, trigger.zone),
                "last": f"{last[0].status} ({_when(last[0].fire_time, trigger.zone)})" if last else "-",
            }
            rows.append(row)
            if args.json:
                print(
                    json.dumps(
                        {
                            **row,
                            "overlap": schedule.overlap,
                            "catchup": schedule.catchup,
                            "missed": schedule.missed,
                            "skipped": schedule.skipped,
                        }
                    )
                )
        if args.json:
            return 0
        if not rows:
            print(f"no schedules in {scheduler.store.describe()}")
            return 0
        headers = {
            "name": "NAME",
            "trigger": "TRIGGER",
            "graph": "GRAPH",
            "state": "STATE",
            "next": "NEXT FIRE",
            "last": "LAST FIRE",
        }
        widths = {key: max(len(headers[key]), *(len(row[key]) for row in rows)) for key in headers}
        print("  ".join(headers[key].ljust(widths[key]) for key in headers).rstrip())
        for row in rows:
            print("  ".join(row[key].ljust(widths[key]) for key in headers).rstrip())
    return 0


def _json_option(text: str | None, option: str) -> Any:
    from kaygraph.core.exceptions import ConfigurationError

    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"{option} must be a JSON object, got {text!r}: {exc}", key=option, value=text
        ) from exc
    if not isinstance(value, dict):
        raise ConfigurationError(f"{option} must be a JSON object, got {text!r}", key=option, value=text)
    return value


def _add(args: Any) -> int:
    from .triggers import cron, parse_trigger

    trigger = cron(args.cron, timezone=args.timezone) if args.cron else parse_trigger(f"every {args.every}")
    with _scheduler(args) as scheduler:
        schedule = scheduler.add(
            args.name,
            args.graph_ref,
            trigger,
            shared=_json_option(args.shared, "--shared"),
            params=_json_option(args.params, "--params"),
            overlap=args.overlap,
            catchup=args.catchup,
            max_age=args.max_age,
            jitter=args.jitter,
            paused=args.paused,
            replace=args.replace,
        )
        state = "paused" if schedule.paused else f"next fire {_when(schedule.next_fire_at, trigger.zone)}"
        print(f"added schedule {schedule.name!r}: {schedule.graph_ref} {trigger.describe()}, {state}")
    return 0


def _simple(args: Any) -> int:
    with _scheduler(args) as scheduler:
        if args.action == "trigger":
            fire = scheduler.trigger(args.name)
            print(f"triggered {args.name!r}: fire {fire.fire_id} runs as soon as a scheduler picks it up")
            return 0
        getattr(scheduler, args.action)(args.name)
        done = {"remove": "removed", "pause": "paused", "resume": "resumed"}[args.action]
        print(f"{done} schedule {args.name!r}")
    return 0


def _next(args: Any) -> int:
    from .triggers import trigger_from_dict

    with _scheduler(args) as scheduler:
        schedule = scheduler.get(args.name)
        trigger = trigger_from_dict(schedule.trigger)
        print(f"{schedule.name}: {trigger.describe()}{' (paused)' if schedule.paused else ''}")
        previous = None
        for when, note in scheduler.next_fires_explained(args.name, args.n):
            offset = when.strftime("%z")
            notes = [note] if note else []
            if previous is not None and previous.utcoffset() != when.utcoffset():
                notes.append(f"UTC offset changed from {previous.strftime('%z')} (DST)")
            utc = when.astimezone(_dt.timezone.utc).strftime("%H:%M:%S")
            line = f"  {when.strftime('%Y-%m-%d %a %H:%M:%S')} {offset[:3]}:{offset[3:]}  ({utc} UTC)"
            print(line + (f"  {'; '.join(notes)}" if notes else ""))
            previous = when
    return 0


def _fires(args: Any) -> int:
    with _scheduler(args) as scheduler:
        fires = scheduler.fires(args.name, limit=args.limit)
        for fire in fires:
            when = _when(fire.fire_time, _dt.timezone.utc)
            extra = f"  {fire.error}" if fire.error else (f"  {fire.note}" if fire.note else "")
            print(
                f"{fire.fire_id:<48} {fire.kind:<9} {fire.status:<9} "
                f"attempts={fire.attempts} at {when}{extra}"
            )
        if not fires:
            if args.name:
                scheduler.get(args.name)  # an unknown schedule is an error naming the known ones
            print("no fires")
    return 0


__all__ = ["register"]

"""run_many's own promises, on the process pool (the engines are covered by test_conformance):
a bounded number of runs in flight, an input that cannot travel named without stopping the
others, and a cancel token that stops what has not finished."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from kaygraph import CancelToken, Graph, Node
from kaygraph.core.exceptions import RunCancelled
from kaygraph.ext.distributed import UnpicklableError, run_many

SIDE = {"path": ""}


class Nap(Node):
    def prep(self, shared: dict[str, Any]) -> int:
        return shared["n"]

    def exec(self, n: int) -> int:
        with open(SIDE["path"], "a") as side:
            side.write(f"start {n} {time.monotonic()}\n")
        time.sleep(0.2)
        with open(SIDE["path"], "a") as side:
            side.write(f"end {n} {time.monotonic()}\n")
        return n

    def post(self, shared: dict[str, Any], prep_res: Any, n: int) -> None:
        shared["pid"] = os.getpid()


def events(path: Path) -> list[tuple[str, int, float]]:
    return [(kind, int(n), float(at)) for kind, n, at in map(str.split, path.read_text().splitlines())]


def test_no_more_runs_in_flight_than_allowed(make_executor: Any, tmp_path: Path) -> None:
    SIDE["path"] = str(tmp_path / "side.txt")
    ex = make_executor("process")

    outcomes = run_many(Graph(Nap(), name="nap"), [{"n": n} for n in range(8)], executor=ex, max_in_flight=2)

    assert [outcome.shared["n"] for outcome in outcomes] == list(range(8))
    running = peak = 0
    for kind, _, _ in sorted(events(tmp_path / "side.txt"), key=lambda event: event[2]):
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    assert peak <= 2


def test_an_input_that_cannot_travel_is_named_and_the_others_run(make_executor: Any, tmp_path: Path) -> None:
    SIDE["path"] = str(tmp_path / "side.txt")
    inputs: list[dict[str, Any]] = [{"n": 0}, {"n": 1, "lock": threading.Lock()}, {"n": 2}]

    outcomes = run_many(Graph(Nap(), name="nap"), inputs, executor=make_executor("process"))

    assert [outcome.ok for outcome in outcomes] == [True, False, True]
    error = outcomes[1].error
    assert isinstance(error, UnpicklableError) and error.path == "shared['lock']"
    assert str(error).startswith("input 1 of run_many cannot be sent to the workers: shared['lock'] is a")


def test_a_cancel_token_stops_the_runs_not_yet_finished(make_executor: Any, tmp_path: Path) -> None:
    SIDE["path"] = str(tmp_path / "side.txt")
    token = CancelToken()
    side = tmp_path / "side.txt"

    def cancel_after_the_first_run_ends() -> None:
        while not (side.exists() and "end" in side.read_text()):
            time.sleep(0.01)
        token.cancel("enough")

    threading.Thread(target=cancel_after_the_first_run_ends, daemon=True).start()

    outcomes = run_many(
        Graph(Nap(), name="nap"), [{"n": n} for n in range(40)], executor=make_executor("process"),
        max_in_flight=2, cancel=token,
    )

    finished = [outcome for outcome in outcomes if outcome.ok]
    cancelled = [outcome for outcome in outcomes if isinstance(outcome.error, RunCancelled)]
    assert 0 < len(finished) < 20 and len(finished) + len(cancelled) == 40
    assert "enough" in str(cancelled[-1].error)

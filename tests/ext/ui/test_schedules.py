"""Schedules on the dashboard (the scheduler extension): list with next fires, pause, resume, trigger."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
from ui_helpers import error_of


def test_schedules_are_listed_paused_resumed_and_triggered(
    sqlite_url: str, serve: Any, tmp_path: Path
) -> None:
    from kaygraph.ext.scheduler import Scheduler, cron, every

    schedules = f"sqlite:///{tmp_path}/schedules-{uuid.uuid4().hex[:6]}.db"
    with Scheduler(schedules) as scheduler:
        scheduler.add(
            "nightly", "ui_graphs:pipeline", cron("30 1 * * *", timezone="Europe/London"), shared={"loops": 2}
        )
        scheduler.add("poll", "ui_graphs:pipeline", every(minutes=5))
    server = serve(sqlite_url, schedule_store=schedules)
    with httpx.Client(base_url=server.url) as client:
        listed = client.get("/api/schedules").json()
        assert listed["available"] is True
        names = [schedule["name"] for schedule in listed["schedules"]]
        assert names == ["nightly", "poll"]
        nightly = listed["schedules"][0]
        assert nightly["graph_ref"] == "ui_graphs:pipeline" and nightly["paused"] is False
        assert nightly["next_fire_at"] is not None and "30 1 * * *" in str(nightly["trigger"])
        # The page shows the trigger as `kaygraph schedules list` does: interval and time zone.
        assert nightly["trigger_text"] == "cron '30 1 * * *' (Europe/London)"
        assert listed["schedules"][1]["trigger_text"] == "every 5m"

        assert client.post("/api/schedules/nightly/pause").status_code == 200
        assert client.get("/api/schedules").json()["schedules"][0]["paused"] is True
        assert client.post("/api/schedules/nightly/resume").status_code == 200
        assert client.get("/api/schedules").json()["schedules"][0]["paused"] is False
        fired = client.post("/api/schedules/poll/trigger")
        assert fired.status_code == 200 and fired.json()["run_id"]

        missing = client.post("/api/schedules/weekly/pause")
        assert missing.status_code == 404 and "nightly, poll" in error_of(missing)["message"]
    reader = serve(sqlite_url, schedule_store=schedules, token="admin-token-1", read_token="reader-token-1")
    refused = httpx.post(
        f"{reader.url}/api/schedules/poll/trigger", headers={"Authorization": "Bearer reader-token-1"}
    )
    assert refused.status_code == 403

"""The HTTP API, one router per topic: ``session``, ``runs``, ``events`` (SSE), ``graphs``, ``schedules``."""

"""Benchmark peers: each lives in its own venv under bench/.venvs/, made from PyPI on first use."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

VENVS = Path(__file__).resolve().parent / ".venvs"


def peer_python(name: str, requirements: list[str]) -> str:
    """Path of the python of venv ``name`` with ``requirements`` installed (created once)."""
    home = VENVS / name
    python = home / "bin" / "python"
    marker = home / ".installed"
    wanted = "\n".join(requirements)
    if not python.exists():
        print(f"[bench] creating {home} for the peer ({', '.join(requirements)})", file=sys.stderr)
        venv.create(home, with_pip=True)
    if not marker.exists() or marker.read_text() != wanted:
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements],
            check=True,
        )
        marker.write_text(wanted)
    return str(python)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2

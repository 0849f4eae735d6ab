"""``python -m kaygraph``: the same command line as the ``kaygraph`` script."""

from __future__ import annotations

if __name__ == "__main__":
    from kaygraph.cli import main

    raise SystemExit(main())

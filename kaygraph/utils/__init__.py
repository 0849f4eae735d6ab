"""Small helpers shared by the core's shell and the extensions (import guards, install hints)."""

from __future__ import annotations

from kaygraph.utils.imports import (
    LazyLoader,
    install_hint,
    optional_import,
    require_extension,
    require_package,
)

__all__ = ["LazyLoader", "install_hint", "optional_import", "require_extension", "require_package"]

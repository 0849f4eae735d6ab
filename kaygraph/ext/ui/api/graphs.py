"""Graphs the dashboard serves: ``GET /api/graphs`` and ``GET /api/graphs/{name}``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from .deps import dashboard, reader

router = APIRouter(prefix="/api", tags=["graphs"])


@router.get("/graphs")
def list_graphs(request: Request, role: str = Depends(reader)) -> dict[str, Any]:
    """Every served graph: name, reference, node count."""
    catalog = dashboard(request).catalog
    return {"graphs": [catalog.summary(name) for name in catalog.names()]}


@router.get("/graphs/{name}")
def get_graph(request: Request, name: str, role: str = Depends(reader)) -> dict[str, Any]:
    """One graph's nodes, labelled edges (nested graphs inline) and Mermaid text."""
    return dashboard(request).catalog.describe(name)


__all__ = ["router"]

"""GET /api/presets: the ready-made runs with their full configs."""

from __future__ import annotations

from fastapi import APIRouter

from gradscope.server.runs.config import PRESETS
from gradscope.server.web.api.models import Preset, PresetList

router = APIRouter(prefix="/api/presets", tags=["presets"])


@router.get("", response_model=PresetList)
def list_presets() -> PresetList:
    """Every preset; the featured ones reproduce the two articles."""
    return PresetList(
        presets=[
            Preset(
                name=name,
                title=p.title,
                description=p.description,
                featured=p.featured,
                config=p.config,
            )
            for name, p in PRESETS.items()
        ]
    )

"""GET /: the page to drop images on (plain HTML, CSS and JavaScript from the package)."""

from __future__ import annotations

from importlib.resources import files as package_files
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(str(package_files("realfake.serve") / "static"))

router = APIRouter()


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")

"""GET /examples (images to try) and /examples/{name} (one of them): open, like the page."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from realfake.serve.examples import CREDIT, example_images
from realfake.serve.schemas import Example

router = APIRouter()


@router.get(
    "/examples",
    response_model=list[Example],
    summary="Images to try: embedded CIFAKE test images with their true class",
)
async def examples() -> list[Example]:
    return [
        Example(name=e.name, url=f"/examples/{e.name}", label=e.label, credit=CREDIT)
        for e in example_images()
    ]


@router.get(
    "/examples/{name}",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "no such example"}},
    summary="One example image (JPEG)",
)
async def example(name: str) -> FileResponse:
    # Looked up among the examples by name: the request never becomes a path.
    for e in example_images():
        if e.name == name:
            return FileResponse(
                e.path, media_type="image/jpeg", filename=e.name, content_disposition_type="inline"
            )
    raise HTTPException(404, f"no example named {name!r}; GET /examples lists them")

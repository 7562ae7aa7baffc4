"""Images to try on the page: a few of the embedded CIFAKE test images, served by the app.

They ship inside the package (``realfake.data.embedded``, MIT, ATTRIBUTION.md there), so the
page has something to classify on a machine with no images of its own; nothing else on disk is
ever served (a request names an example, never a path).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from realfake.data.embedded import embedded_data_path

PER_CLASS = 3
CLASSES = ("FAKE", "REAL")
CREDIT = (
    "CIFAKE test set (Bird & Lotfi, 2024; FAKE: Stable Diffusion 1.4, REAL: CIFAR-10), "
    "MIT licence, shipped with realfake"
)


@dataclass(frozen=True)
class ExampleImage:
    name: str  # what the app calls it: example-1.jpg ...
    label: str  # the class CIFAKE gives it
    path: Path


def example_images() -> list[ExampleImage]:
    """The first PER_CLASS test images of each class by file name, the classes interleaved."""
    root = embedded_data_path() / "test"
    chosen = {c: sorted((root / c).glob("*.jpg"))[:PER_CLASS] for c in CLASSES}
    pairs = [(c, chosen[c][i]) for i in range(PER_CLASS) for c in CLASSES if i < len(chosen[c])]
    return [ExampleImage(f"example-{k}.jpg", c, p) for k, (c, p) in enumerate(pairs, start=1)]

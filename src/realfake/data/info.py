"""What a source holds: counts per split and class, image sizes, skipped files, duplicates.

Everything comes from the cache entry (file digests and original sizes are recorded while
decoding), so describing a source reads its bytes at most once, and not at all when cached.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from realfake.data.embedded import embedded_data_path
from realfake.data.loader import load_images
from realfake.data.sources import open_source


@dataclass
class DataInfo:
    source: str
    layout: str
    classes: list[str]
    fingerprint: str
    content_hash: str
    counts: dict[str, dict[str, int]]  # split -> class (or "-" when unlabelled) -> images
    sizes: dict[str, int]  # "W×H" of the original files -> images, most common first
    skipped: list[tuple[str, str]]
    ignored: int  # files left out by extension (not images) or as junk (.DS_Store, __MACOSX)
    # Groups of byte-identical files (md5 hex -> (split, name) members), among each split's
    # own files and spanning two or more splits.
    within: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    across: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    train_in_test: int = 0  # train images whose bytes also occur in test (a leak)
    cache_path: Path | None = None
    ignored_files: list[str] = field(default_factory=list)  # their names, sorted

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.counts.values())


def describe_source(
    source: str | Path | None = None,
    image_size: int = 32,
    resize: str = "stretch",
    *,
    cache_dir: str | Path | None = None,
    strict: bool = False,
) -> DataInfo:
    """Summarise ``source`` (None: the embedded CIFAKE mini); builds its cache if needed."""
    data = load_images(source, image_size, resize, cache_dir=cache_dir, strict=strict)
    embedded = embedded_data_path()
    ignored_files = data.ignored_files
    if data.ignored and not ignored_files:
        # A cache entry from before names were kept: list the source again (no decoding).
        ignored_files = open_source(embedded if source is None else Path(source)).listing().ignored
    counts: dict[str, dict[str, int]] = {}
    sizes: Counter[str] = Counter()
    members: dict[bytes, list[tuple[str, str]]] = defaultdict(list)
    for split, part in data.splits.items():
        labels = part.labels.tolist()
        per_class = Counter(data.classes[i] if i >= 0 else "-" for i in labels)
        order = data.classes if data.classes else ["-"]
        counts[split] = {c: per_class[c] for c in order if per_class[c]}
        if part.sizes is not None:
            sizes.update(f"{w}×{h}" for w, h in part.sizes.tolist())
        if part.md5 is not None:
            for name, digest in zip(part.names, part.md5, strict=True):
                members[digest.tobytes()].append((split, name))
    within: dict[str, dict[str, list[str]]] = defaultdict(dict)
    across: dict[str, list[tuple[str, str]]] = {}
    train_in_test = 0
    for digest, group in members.items():
        if len(group) < 2:
            continue
        by_split = Counter(split for split, _ in group)
        for split, n in by_split.items():
            if n >= 2:
                within[split][digest.hex()] = sorted(name for s, name in group if s == split)
        if len(by_split) > 1:
            across[digest.hex()] = sorted(group)
            if "test" in by_split:
                train_in_test += by_split.get("train", 0)
    return DataInfo(
        source=str(source) if source is not None else f"embedded CIFAKE mini ({embedded})",
        layout=data.layout,
        classes=data.classes,
        fingerprint=data.fingerprint,
        content_hash=data.content_hash,
        counts=counts,
        sizes=dict(sizes.most_common()),
        skipped=data.skipped,
        ignored=data.ignored,
        within=dict(within),
        across=across,
        train_in_test=train_in_test,
        cache_path=data.cache_path,
        ignored_files=list(ignored_files),
    )

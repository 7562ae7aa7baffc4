"""What a source's file names mean: which split and which class each image belongs to.

Accepted layouts (names relative to the source root):
  - split tree    ``{train,val,test}/<class>/<image>`` (any subset of the splits);
  - image folder  ``<class>/<image>`` (everything is "train");
  - flat images   ``<image>`` (unlabelled, for prediction);
  - a CSV manifest with a ``label`` (and optional ``split``) column.
A single top-level folder around a layout (Kaggle's ``archive/``) is looked through. Images in
deeper sub-folders of a class folder belong to that class. With a source level N, the N-th folder
of each image's path names its source and is skipped when classes and splits are read
(``root/<source>/<class>/<image>`` with N = 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from realfake.data.sources import Entry, ManifestSource, Source
from realfake.errors import DataError

SPLIT_NAMES = ("train", "val", "test")
# CIFAKE's label order is part of the published checkpoints' meaning, so it is fixed here rather
# than left to sorting (which happens to agree).
CIFAKE_CLASSES = ("FAKE", "REAL")
UNLABELLED = "unlabelled"
LAYOUTS = "<root>/<class>/<image> or <root>/{train,val,test}/<class>/<image>"
MANIFEST_LEVEL = (
    "data.source_level reads folders of a folder or an archive, but {where} is a manifest; "
    "name each image's source in a 'source' column instead"
)


@dataclass
class Layout:
    kind: str  # "split_tree" | "image_folder" | "manifest" | "unlabelled"
    splits: dict[str, list[tuple[Entry, int]]]  # split -> (entry renamed to its layout path, label)
    classes: list[str]


def order_classes(names: Iterable[str]) -> list[str]:
    """Class order: CIFAKE's fixed FAKE=0, REAL=1, otherwise sorted folder names."""
    found = set(names)
    if found == set(CIFAKE_CLASSES):
        return list(CIFAKE_CLASSES)
    return sorted(found)


def impose_classes(found: Sequence[str], wanted: Sequence[str], where: str) -> list[int]:
    """Index of each found class in ``wanted``; DataError when a found class is not wanted."""
    unknown = [c for c in found if c not in wanted]
    if unknown:
        raise DataError(
            f"class names do not match: {where} has classes {list(found)} but "
            f"{list(wanted)} were expected (unknown: {unknown})"
        )
    return [list(wanted).index(c) for c in found]


def source_folder(name: str, level: int, where: str) -> str:
    """The folder at ``level`` of an image's path ``name``: its source (data.source_level)."""
    parts = name.split("/")
    if len(parts) <= level + 1:
        raise DataError(
            f"image {name} in {where} has no folder at level {level} of its path; "
            f"data.source_level={level} expects every image inside a source folder at that level, "
            f"e.g. <root>/<source>/<class>/<image> for 0"
        )
    return parts[level]


def resolve_layout(
    source: Source, labelled: bool | None, source_level: int | None = None
) -> Layout:
    """Assign every image of ``source`` to a split and a class, or explain what is wrong.

    With ``source_level`` the folder at that level of each path is left out while splits and
    classes are read; the layout's entries keep their whole paths, which name their sources.
    """
    listing = source.listing()
    where = str(source.path)
    if not listing.images:
        raise DataError(
            f"found no images in {where} ({len(listing.ignored)} other files); expected image "
            f"files (.jpg, .png, ...) laid out as {LAYOUTS}"
        )
    if isinstance(source, ManifestSource):
        if source_level is not None:
            raise DataError(MANIFEST_LEVEL.format(where=where))
        return _manifest_layout(source, labelled)
    if labelled is False or source.kind == "file":
        return _unlabelled(listing.images)
    if source_level is not None:
        return _skipping_level(listing.images, listing.dirs, source_level, where, labelled)
    return _folder_layout(listing.images, listing.dirs, where, labelled)


def _skipping_level(
    images: list[Entry], dirs: set[str], level: int, where: str, labelled: bool | None
) -> Layout:
    """The layout of the paths without their source folder, mapped back to the whole paths."""
    for e in images:
        source_folder(e.name, level, where)
    view = [replace(e, name=_without(e.name, level)) for e in images]
    # Folders above the level stay, the source folders themselves go, deeper ones lose theirs.
    view_dirs = {
        d if d.count("/") < level else _without(d, level) for d in dirs if d.count("/") != level
    }
    layout = _folder_layout(view, view_dirs, where, labelled)
    # Several images may share a path without their source folder; their readers (refs) are
    # their own, so the whole path is found again from them.
    whole = {id(e.ref): e for e in images}
    splits = {s: [(whole[id(e.ref)], c) for e, c in items] for s, items in layout.splits.items()}
    return Layout(layout.kind, splits, layout.classes)


def _without(path: str, level: int) -> str:
    parts = path.split("/")
    return "/".join(parts[:level] + parts[level + 1 :])


def _folder_layout(
    images: list[Entry], dirs: set[str], where: str, labelled: bool | None
) -> Layout:
    """Split tree, image folder or unlabelled images: what a folder's or archive's paths say."""
    entries, dirs = _strip_wrappers(images, dirs)
    loose = [e for e in entries if "/" not in e.name]
    if len(loose) == len(entries):
        if labelled:
            raise DataError(
                f"found {len(loose)} images directly in {where} and no class folders; "
                f"expected {LAYOUTS}"
            )
        return _unlabelled(images)
    if loose:
        raise DataError(
            f"found {len(loose)} images directly in {where} (e.g. {loose[0].name}) next to "
            f"folders; expected every image inside a class folder: {LAYOUTS}"
        )
    tops = {e.name.split("/", 1)[0] for e in entries}
    if tops <= set(SPLIT_NAMES):
        return _split_tree(entries, dirs, where)
    if tops & set(SPLIT_NAMES):
        raise DataError(
            f"found split folders {sorted(tops & set(SPLIT_NAMES))} next to other folders "
            f"{sorted(tops - set(SPLIT_NAMES))} in {where}; expected {LAYOUTS}"
        )
    groups = {"train": [(e, e.name.split("/", 1)[0]) for e in entries]}
    _check_class_dirs(groups["train"], {d for d in dirs if "/" not in d}, where, "")
    return _assemble("image_folder", groups, where)


def _unlabelled(entries: list[Entry]) -> Layout:
    return Layout(UNLABELLED, {UNLABELLED: [(e, -1) for e in entries]}, [])


def _strip_wrappers(entries: list[Entry], dirs: set[str]) -> tuple[list[Entry], set[str]]:
    """Look through single top-level folders (not split names) that wrap a whole layout."""
    while True:
        tops = {e.name.split("/", 1)[0] for e in entries}
        if len(tops) != 1 or tops <= set(SPLIT_NAMES):
            return entries, dirs
        if any(e.name.count("/") < 2 for e in entries):
            return entries, dirs  # one class folder of images: not a wrapper
        prefix = f"{tops.pop()}/"
        entries = [replace(e, name=e.name[len(prefix) :]) for e in entries]
        dirs = {d[len(prefix) :] for d in dirs if d.startswith(prefix)}


def _split_tree(entries: list[Entry], dirs: set[str], where: str) -> Layout:
    groups: dict[str, list[tuple[Entry, str]]] = {}
    for split in SPLIT_NAMES:
        inside = [e for e in entries if e.name.startswith(f"{split}/")]
        if not inside:
            continue
        loose = [e for e in inside if e.name.count("/") < 2]
        if loose:
            raise DataError(
                f"found {len(loose)} images directly in {split}/ of {where} (e.g. "
                f"{loose[0].name}); expected {split}/<class>/<image>"
            )
        groups[split] = [(e, e.name.split("/")[1]) for e in inside]
        class_dirs = {d for d in dirs if d.startswith(f"{split}/") and d.count("/") == 1}
        _check_class_dirs(groups[split], class_dirs, where, f"{split}/")
    return _assemble("split_tree", groups, where)


def _check_class_dirs(
    items: list[tuple[Entry, str]], class_dirs: set[str], where: str, prefix: str
) -> None:
    """An existing class folder without images is a mistake worth stopping for."""
    used = {f"{prefix}{c}" for _, c in items}
    empty = sorted(class_dirs - used)
    if empty:
        raise DataError(
            f"class folder {empty[0]}/ in {where} holds no images"
            + (f" (and {len(empty) - 1} more empty class folders)" if len(empty) > 1 else "")
            + "; expected at least one image in every class folder"
        )


def _assemble(kind: str, groups: dict[str, list[tuple[Entry, str]]], where: str) -> Layout:
    """Order the classes, check every split uses train's classes, and turn names into labels."""
    per_split = {s: {c for _, c in items} for s, items in groups.items()}
    if "train" in per_split:
        classes = order_classes(per_split["train"])
        for split, found in per_split.items():
            extra = sorted(found - set(classes))
            if extra:
                raise DataError(
                    f"{split} of {where} has classes {extra} that train lacks (train has "
                    f"{classes}); expected the same class folders in every split"
                )
    else:
        classes = order_classes(set().union(*per_split.values()))
    index = {c: i for i, c in enumerate(classes)}
    splits = {s: [(e, index[c]) for e, c in items] for s, items in groups.items()}
    return Layout(kind, splits, classes)


def _manifest_layout(source: ManifestSource, labelled: bool | None) -> Layout:
    rows = source.rows()
    where = str(source.path)
    unlabelled = [r for r in rows if r.label is None]
    if labelled is False or len(unlabelled) == len(rows):
        if labelled:
            raise DataError(f"manifest {where} has no labels; expected a 'label' column")
        return _unlabelled([r.entry for r in rows])
    if unlabelled:
        raise DataError(
            f"manifest {where} has {len(unlabelled)} rows without a label (e.g. "
            f"{unlabelled[0].entry.name}); expected a label on every row"
        )
    bad = sorted({r.split for r in rows if r.split is not None and r.split not in SPLIT_NAMES})
    if bad:
        raise DataError(
            f"manifest {where} has split values {bad}; expected one of {list(SPLIT_NAMES)}"
        )
    groups: dict[str, list[tuple[Entry, str]]] = {}
    for r in rows:
        groups.setdefault(r.split or "train", []).append((r.entry, r.label or ""))
    for items in groups.values():
        items.sort(key=lambda item: item[0].name)
    return _assemble("manifest", groups, where)

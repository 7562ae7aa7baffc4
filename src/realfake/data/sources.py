"""Where image bytes come from: a folder, a .zip, a .tar(.gz), a CSV manifest or one image file.

Each source lists its files (names relative to its root, '/'-separated) and reads their bytes
without extracting anything; what the names mean (splits, classes) is decided in ``layout.py``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from realfake.errors import DataError

# Extensions Pillow decodes out of the box; anything else is ignored (and counted).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
EXPECTED = "a folder, a .zip or .tar(.gz) archive, a .csv manifest (path,label) or an image file"


@dataclass(frozen=True)
class Entry:
    """One image file of a source."""

    name: str  # path relative to the source root, '/'-separated
    ref: Any  # what the source's reader needs (a path, a ZipInfo, a TarInfo)
    size: int  # bytes
    order: int  # position in the archive: reading in this order never seeks backwards


@dataclass
class Listing:
    images: list[Entry]  # sorted by name
    ignored: list[str] = field(default_factory=list)  # non-image files (by extension) and junk
    dirs: set[str] = field(default_factory=set)  # every folder, including empty ones


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def is_junk(name: str) -> bool:
    """Hidden files and folders and macOS zip metadata (``__MACOSX/``, ``._x.jpg``)."""
    if "/." not in f"/{name}" and "__MACOSX" not in name:  # fast path: most names
        return False
    return any(part.startswith(".") or part == "__MACOSX" for part in name.split("/"))


def _clean(name: str) -> str:
    name = name.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")


def _with_parents(dirs: set[str]) -> set[str]:
    out = set()
    for d in dirs:
        parts = d.split("/")
        out.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return {d for d in out if d and not is_junk(d)}


def _build_listing(
    files: list[tuple[str, Any, int, int]], dirs: set[str], clean: bool = True
) -> Listing:
    """Sort (name, ref, size, order) rows into images and ignored files."""
    listing = Listing(images=[])
    parents = {_clean(d) for d in dirs}
    for name, ref, size, order in files:
        name = _clean(name) if clean else name
        if not name:
            continue
        parents.add(name.rpartition("/")[0])
        if is_junk(name) or not is_image_name(name):
            listing.ignored.append(name)
        else:
            listing.images.append(Entry(name, ref, size, order))
    listing.dirs = _with_parents(parents)
    listing.images.sort(key=lambda e: e.name)
    listing.ignored.sort()
    return listing


def file_version(st: os.stat_result) -> str:
    """What changes whenever a file's bytes may have: mtime, inode and ctime.

    Size and mtime alone miss a file replaced by other bytes of the same size whose mtime was
    set back (``cp -p``, ``touch -r``, archive extraction); the inode changes when a file is
    replaced by another, and the ctime changes with every write and cannot be set by a user.
    """
    return f"{st.st_mtime_ns}:{st.st_ino}:{st.st_ctime_ns}"


def _archive_stamp(path: Path) -> str:
    """Cheap identity of an archive: size, version and a hash of its first and last 64 KiB.

    Listing member names and sizes would cost 1.3 s for CIFAKE's 60,000-member tar, most of
    the 2 s budget for loading a cached set; any rewrite of the archive changes its version.
    """
    st = path.stat()
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as f:
        digest.update(f.read(1 << 16))
        if st.st_size > 1 << 17:
            f.seek(-(1 << 16), os.SEEK_END)
        digest.update(f.read(1 << 16))
    return f"{st.st_size}:{file_version(st)}:{digest.hexdigest()}"


class Source:
    """A readable collection of files; subclasses know one container format."""

    kind = "?"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._listing: Listing | None = None

    def listing(self) -> Listing:
        if self._listing is None:
            self._listing = self._list()
        return self._listing

    def _list(self) -> Listing:
        raise NotImplementedError

    def stamp(self) -> str:
        """Identity of the files (names, sizes, versions or hashes): the cache key's source part."""
        listing = self.listing()
        digest = hashlib.sha256()
        for e in listing.images:
            digest.update(f"{e.name}\0{e.size}\0{self._version(e)}\n".encode())
        # Ignored files and empty folders count too: they change what the layout check says.
        digest.update("\0".join(listing.ignored + sorted(listing.dirs)).encode())
        return digest.hexdigest()

    def _version(self, entry: Entry) -> str:
        return ""

    def read(self, entries: list[Entry]) -> Iterator[tuple[Entry, bytes | Exception]]:
        """Bytes of each entry (in archive order), or the exception that reading raised."""
        raise NotImplementedError


class FolderSource(Source):
    kind = "folder"

    def _list(self) -> Listing:
        files: list[tuple[str, Any, int, int]] = []
        dirs: set[str] = set()
        root = str(self.path)
        for dirpath, dirnames, filenames in os.walk(root, onerror=_raise_walk_error):
            rel = os.path.relpath(dirpath, root)
            rel = "" if rel == "." else rel.replace(os.sep, "/")
            dirnames.sort()
            dirs.update(f"{rel}/{d}" if rel else d for d in dirnames)
            for fn in filenames:
                full = os.path.join(dirpath, fn)
                try:
                    st = os.stat(full)
                    size, version = st.st_size, file_version(st)
                except OSError:  # a dangling link: reading it later reports the failure
                    size, version = 0, ""
                files.append((f"{rel}/{fn}" if rel else fn, (full, version), size, 0))
        return _build_listing(files, dirs)

    def _version(self, entry: Entry) -> str:
        return entry.ref[1]

    def read(self, entries: list[Entry]) -> Iterator[tuple[Entry, bytes | Exception]]:
        for e in entries:
            try:
                yield e, Path(e.ref[0]).read_bytes()
            except OSError as exc:
                yield e, exc


def _raise_walk_error(exc: OSError) -> None:
    raise DataError(f"cannot read folder {exc.filename}: {exc.strerror}")


class ImageFileSource(FolderSource):
    """A single image file, for prediction."""

    kind = "file"

    def _list(self) -> Listing:
        st = self.path.stat()
        ref = (str(self.path), file_version(st))
        return _build_listing([(self.path.name, ref, st.st_size, 0)], set())


class ZipSource(Source):
    kind = "zip"

    def stamp(self) -> str:
        return _archive_stamp(self.path)

    def _list(self) -> Listing:
        with _open_zip(self.path) as zf:
            infos = zf.infolist()
        dirs = {i.filename for i in infos if i.is_dir()}
        files = [(i.filename, i, i.file_size, i.header_offset) for i in infos if not i.is_dir()]
        return _build_listing(files, dirs)

    def read(self, entries: list[Entry]) -> Iterator[tuple[Entry, bytes | Exception]]:
        with _open_zip(self.path) as zf:
            for e in sorted(entries, key=lambda e: e.order):
                try:
                    yield e, zf.read(e.ref)
                except (OSError, zipfile.BadZipFile, EOFError, RuntimeError) as exc:
                    yield e, exc  # CRC mismatch, encrypted or truncated member


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(
            f"{path} is not a readable zip archive ({exc}); expected {EXPECTED}"
        ) from exc


class TarSource(Source):
    kind = "tar"

    def stamp(self) -> str:
        return _archive_stamp(self.path)

    def _list(self) -> Listing:
        with _open_tar(self.path) as tf:
            try:
                members = tf.getmembers()
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise DataError(f"{self.path} is a damaged tar archive ({exc})") from exc
        dirs = {m.name for m in members if m.isdir()}
        files = [(m.name, m, m.size, m.offset_data) for m in members if m.isfile()]
        return _build_listing(files, dirs)

    def read(self, entries: list[Entry]) -> Iterator[tuple[Entry, bytes | Exception]]:
        # Offsets come from our own listing, so an uncompressed tar is read by plain seeks
        # (the listing's TarInfo objects belong to a closed TarFile); compressed tars go
        # through tarfile in offset order, which only ever decompresses forwards.
        compressed = not _is_plain_tar(self.path)
        ordered = sorted(entries, key=lambda e: e.order)
        if not compressed:
            with self.path.open("rb") as f:
                for e in ordered:
                    f.seek(e.ref.offset_data)
                    data = f.read(e.size)
                    yield e, data if len(data) == e.size else EOFError("archive ends early")
            return
        with _open_tar(self.path) as tf:
            for e in ordered:
                try:
                    handle = tf.extractfile(e.ref)
                    yield e, handle.read() if handle else OSError("not a regular file")
                except (tarfile.TarError, OSError, EOFError) as exc:
                    yield e, exc


def _is_plain_tar(path: Path) -> bool:
    with path.open("rb") as f:
        magic = f.read(6)
    # gzip, bzip2 and xz magic numbers; anything else is read as an uncompressed tar.
    return not magic.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ"))


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise DataError(
            f"{path} is not a readable tar archive ({exc}); expected {EXPECTED}"
        ) from exc


@dataclass(frozen=True)
class ManifestRow:
    entry: Entry
    label: str | None
    split: str | None
    source: str | None = None  # the optional "source" column: where the image comes from


class ManifestSource(FolderSource):
    """A CSV of ``path,label`` (optionally ``split`` and ``source``); paths relative to the CSV."""

    kind = "manifest"

    def rows(self) -> list[ManifestRow]:
        self.listing()
        return self._rows

    def _list(self) -> Listing:
        try:
            text = self.path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read manifest {self.path} ({exc})") from exc
        reader = csv.DictReader(io.StringIO(text))
        columns = [c.strip().lower() for c in reader.fieldnames or []]
        if "path" not in columns:
            raise DataError(
                f"manifest {self.path} has columns {columns or 'none'}; expected a header row "
                "with 'path' and 'label' (and optionally 'split')"
            )
        reader.fieldnames = columns
        base = self.path.parent
        rows, files, missing, seen = [], [], [], set()
        for row in reader:
            raw = (row.get("path") or "").strip()
            if not raw:
                continue
            full = Path(raw) if os.path.isabs(raw) else base / raw
            try:
                st = full.stat()
            except OSError:
                missing.append(raw)
                continue
            name = raw.replace("\\", "/")
            if name in seen:
                raise DataError(f"manifest {self.path} lists {raw} twice; expected each file once")
            seen.add(name)
            files.append((name, (str(full), file_version(st)), st.st_size, 0))
            label = (row.get("label") or "").strip() or None
            split = (row.get("split") or "").strip().lower() or None
            rows.append((name, label, split, (row.get("source") or "").strip() or None))
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            shown = ", ".join(missing[:5]) + more
            raise DataError(
                f"manifest {self.path} names {len(missing)} files that do not exist ({shown}); "
                f"expected paths relative to {base} or absolute"
            )
        listing = _build_listing(files, set(), clean=False)  # absolute paths stay absolute
        by_name = {e.name: e for e in listing.images}
        self._rows = [ManifestRow(by_name[n], *rest) for n, *rest in rows if n in by_name]
        return listing

    def stamp(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest() + ":" + super().stamp()


def open_source(path: str | Path) -> Source:
    """The source reader that fits ``path`` (by type and suffix), or a DataError."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"data source {path} does not exist; expected {EXPECTED}")
    if path.is_dir():
        return FolderSource(path)
    name = path.name.lower()
    if name.endswith(".csv"):
        return ManifestSource(path)
    if name.endswith(".zip"):
        return ZipSource(path)
    if name.endswith(TAR_SUFFIXES):
        return TarSource(path)
    if is_image_name(name):
        return ImageFileSource(path)
    if zipfile.is_zipfile(path):
        return ZipSource(path)
    if tarfile.is_tarfile(path):
        return TarSource(path)
    raise DataError(f"data source {path} is a file of unknown type; expected {EXPECTED}")

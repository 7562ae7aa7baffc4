"""Atomic file output: readers see the old file or the complete new one, never a part.

Every output goes to a temporary file in the same folder (so the final rename cannot cross file
systems), is flushed to disk, then renamed over the target. A process killed half-way leaves
the previous file untouched and at most a hidden ``.NAME.*.part`` file, removed on any error.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed over it when the block ends without error.

    Writers that need a path (matplotlib, Pillow, pandas) write to the yielded path; give them
    the format explicitly, as its suffix is ``.part``.
    """
    from realfake.errors import OutputError

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    tmp = Path(name)
    try:
        # mkstemp creates 0600 whatever the umask; a new file should be readable as any other
        # tool's would be (a container running as another user reads a mounted model.json).
        os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    try:
        yield tmp
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, a vanished folder: the previous file stays whole
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process's umask, read without changing it (Linux: /proc), else by setting it back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it, then restore it
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with replacing(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def check_writable_dir(path: str | Path, what: str = "output folder") -> Path:
    """``path`` as a folder this process can write in (created if missing), or an OSError
    turned into a one-sentence ``OutputError`` before any work is done."""
    from realfake.errors import OutputError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"cannot write to {what} {path}: {exc.strerror or exc}") from None
    return path


def check_writable_file(path: str | Path, force: bool = True, what: str = "output file") -> Path:
    """``path`` as a file this process can create or (with ``force``) replace, checked first."""
    from realfake.errors import OutputError

    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder; give a file name")
    if path.exists() and not force:
        raise OutputError(f"{what} {path} already exists; pass --force to replace it")
    check_writable_dir(path.parent, f"the folder of {what} {path}")
    return path

"""Faults injected for real: a SIGKILLed decode leaves no process and no folder for long, and
nothing the data layer leaves out (ignored files, renamed perturbed copies) goes unsaid."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from data_samples import image_bytes, write_folder
from PIL import Image

from realfake.cli import main
from realfake.data import build, decode, perturbed_copy
from realfake.data.cache import EntryWriter, owner_tag, remove_stale_temporaries
from realfake.data.info import describe_source
from realfake.data.loader import load_images
from realfake.data.perturbations import parse_perturbation

linux_only = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="finds processes through /proc"
)

KEY = "0123456789abcdef0123"  # any cache key: the sweep looks at folder names only


# --- processes, as /proc sees them ----------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def _children(pid: int) -> dict[int, str]:
    """Live children of ``pid``: pid -> start time (which tells a reused PID apart)."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields and int(fields[1]) == pid and fields[0] != "Z":
                out[int(entry)] = fields[19]
    return out


def _gone(pid: int, start: str) -> bool:
    """True once the process is dead: no such PID, a zombie, or the PID now names another."""
    fields = _stat(pid)
    return fields is None or fields[0] == "Z" or fields[19] != start


def _alive(processes: dict[int, str]) -> list[int]:
    return [pid for pid, start in processes.items() if not _gone(pid, start)]


def _wait_until(condition, seconds: float, every: float = 0.01) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()


def _kill_survivors(processes: dict[int, str]) -> None:
    """Never leave a process behind, even when the test fails: kill ours by PID."""
    for pid, start in processes.items():
        if not _gone(pid, start):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _temporaries(cache: Path) -> list[str]:
    if not cache.exists():
        return []
    return sorted(p.name for p in cache.iterdir() if p.name.startswith(".tmp-"))


# --- a source that takes a while to decode ------------------------------------------------


def _slow_source(root: Path, per_class: int) -> Path:
    """Two classes of 256×256 noise PNGs (~2 ms each to decode), written fast: four distinct
    files per class, hard-linked (or copied) under every other name."""
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        bases = []
        for k in range(4):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(buf, "PNG")
            bases.append(root / cls / f"base{k}.png")
            bases[-1].write_bytes(buf.getvalue())
        for i in range(per_class - 4):
            try:
                os.link(bases[i % 4], root / cls / f"{i}.png")
            except OSError:  # no hard links here
                (root / cls / f"{i}.png").write_bytes(bases[i % 4].read_bytes())
    return root


CHILD = """
import sys
from realfake.data import build
from realfake.data.loader import load_images

build.CHUNK = 32  # workers start after the first 32 files
load_images(sys.argv[1], 32, cache_dir=sys.argv[2], workers=2)
print("finished")
"""


@linux_only
@pytest.mark.slow
def test_sigkill_during_the_first_decode_leaves_no_worker_and_no_folder(tmp_path: Path) -> None:
    per_class = 500
    source = _slow_source(tmp_path / "src", per_class)
    cache = tmp_path / "cache"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(source), str(cache)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    workers: dict[int, str] = {}
    try:
        # Both workers are forked together at the first chunk.
        assert _wait_until(lambda: len(_children(child.pid)) >= 2 or child.poll() is not None, 60)
        workers = _children(child.pid)
        assert child.poll() is None and len(workers) == 2, "the decode ended before the kill"
        assert len(_temporaries(cache)) == 1  # the unfinished entry
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL
        assert _wait_until(lambda: not _alive(workers), 10), f"orphaned workers {_alive(workers)}"
    finally:
        _kill_survivors(workers)
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
    # The killed build's folder is still there (nothing can clean up after SIGKILL) ...
    leftover = _temporaries(cache)
    assert len(leftover) == 1 and f"-{child.pid}." in leftover[0]
    assert not [p for p in cache.iterdir() if not p.name.startswith(".tmp-")]  # no entry
    # ... until the next load in that cache root, which also builds the whole entry.
    data = load_images(source, 32, cache_dir=cache)
    assert _temporaries(cache) == []
    assert len(data.splits["train"]) == 2 * per_class
    assert data.splits["train"].labels.bincount().tolist() == [per_class, per_class]
    assert data.skipped == [] and data.cache_path is not None and data.cache_path.parent == cache


class _InterruptingImages:
    """Stands for a split's image array; Ctrl-C arrives as the first chunk is stored."""

    def __init__(self, images: np.ndarray, on_interrupt: Callable[[], None]) -> None:
        self.images, self.on_interrupt = images, on_interrupt

    def __setitem__(self, rows: object, values: np.ndarray) -> None:
        self.on_interrupt()
        raise KeyboardInterrupt


HANG = 20.0  # seconds a worker spends on every chunk after its first


@linux_only
@pytest.mark.parametrize("where", ["reading", "storing"])
def test_an_interrupt_while_decoding_kills_the_pool_and_removes_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Ctrl-C in the main process while workers are busy: while it reads files (inside the
    decode stream) or while it stores a result (in the stream's consumer). The workers are
    killed, not waited for: they would spend HANG seconds on each queued chunk."""
    source = write_folder(
        tmp_path / "src", {f"{c}/{i}.png": image_bytes(i) for c in "ab" for i in range(20)}
    )
    cache = tmp_path / "cache"
    before = _children(os.getpid())
    seen: dict[int, str] = {}

    def note_workers() -> None:
        seen.update({p: s for p, s in _children(os.getpid()).items() if p not in before})

    real_decode = decode.decode_chunk
    done_here = [0]  # per worker: each forked copy counts its own chunks

    @functools.wraps(real_decode)  # pickled by name, so the forked workers run this one
    def slow_after_the_first(*args: Any) -> Any:
        done_here[0] += 1
        if done_here[0] > 1:
            time.sleep(HANG)
        return real_decode(*args)

    monkeypatch.setattr(decode, "decode_chunk", slow_after_the_first)
    monkeypatch.setattr(build, "CHUNK", 4)
    if where == "reading":
        real_blobs = build._blobs

        def interrupted(*args: object) -> Iterator[tuple[object, object]]:
            for n, item in enumerate(real_blobs(*args)):
                if n == 12:  # 3 chunks of 4 submitted: one of them is a worker's second
                    note_workers()
                    raise KeyboardInterrupt
                yield item

        monkeypatch.setattr(build, "_blobs", interrupted)
    else:
        real_images = EntryWriter.images

        def images(self: EntryWriter, split: str, n: int, size: int) -> object:
            return _InterruptingImages(real_images(self, split, n, size), note_workers)

        monkeypatch.setattr(EntryWriter, "images", images)
    try:
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            load_images(source, 16, cache_dir=cache, workers=2)
        assert time.monotonic() - started < HANG / 2, "waited for the queued chunks"
        assert len(seen) == 2  # the pool was running when the interrupt came
        # Killed and joined before the exception left the loader: nothing to wait for.
        assert _alive(seen) == []
        assert list(cache.iterdir()) == []  # neither an entry nor a temporary folder
    finally:
        _kill_survivors(seen)
    monkeypatch.undo()
    assert len(load_images(source, 16, cache_dir=cache).splits["train"]) == 40


# --- stale temporary folders ---------------------------------------------------------------

ORPHAN = """
import os, sys
from pathlib import Path
from realfake.data.cache import EntryWriter

writer = EntryWriter(Path(sys.argv[1]), sys.argv[2])
(writer.tmp / "train.images.npy").write_bytes(b"half written")
print(writer.tmp.name, flush=True)
os._exit(0)  # dies without cleaning up, as a SIGKILLed build would
"""


def _orphan_folder(cache: Path, reap: bool) -> tuple[str, subprocess.Popen[str]]:
    """A temporary folder left by a process that died; a zombie unless ``reap``."""
    child = subprocess.Popen(
        [sys.executable, "-c", ORPHAN, str(cache), KEY], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    name = child.stdout.readline().strip()
    if reap:
        child.wait(timeout=60)
    else:
        assert _wait_until(lambda: (_stat(child.pid) or ["Z"])[0] == "Z", 60)
    return name, child


@linux_only
def test_only_folders_of_dead_owners_are_removed(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    live = EntryWriter(cache, KEY)  # this process: alive, building
    dead, _ = _orphan_folder(cache, reap=True)
    zombie, child = _orphan_folder(cache, reap=False)  # dead, its parent has not reaped it
    try:
        pid, _, host = owner_tag().partition("@")
        names = {
            # this PID, but another start time: an old owner whose PID was reused by us
            "reused": f".tmp-{KEY}-{os.getpid()}.1@{host}-aaaaaaaa",
            "elsewhere": f".tmp-{KEY}-{pid.split('.')[0]}.1@another-host-bbbbbbbb",
            "legacy_old": f".tmp-{KEY}-cccccccc",  # before owners were recorded
            "legacy_new": f".tmp-{KEY}-dddddddd",
            "not_ours": ".tmp-something-else",
        }
        for name in names.values():
            (cache / name).mkdir()
        day_ago = time.time() - 25 * 3600
        os.utime(cache / names["legacy_old"], (day_ago, day_ago))
        assert len(_temporaries(cache)) == 8

        removed = remove_stale_temporaries(cache)

        assert sorted(p.name for p in removed) == sorted(
            [dead, zombie, names["reused"], names["legacy_old"]]
        )
        assert _temporaries(cache) == sorted(
            [live.tmp.name, names["elsewhere"], names["legacy_new"], names["not_ours"]]
        )
        # The live builder is undisturbed and still commits atomically.
        live.save("train", "labels", np.zeros(0, np.int64))
        entry = live.commit({"skipped": [], "version": 0})
        assert (entry / "train.labels.npy").is_file() and not live.tmp.exists()
    finally:
        child.wait(timeout=60)


def test_a_load_cleans_the_cache_root_first(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    dead, _ = _orphan_folder(cache, reap=True)
    live = EntryWriter(cache, KEY)
    load_images(write_folder(tmp_path / "src", {"a/1.png": image_bytes(1)}), cache_dir=cache)
    assert _temporaries(cache) == [live.tmp.name]
    assert not (cache / dead).exists()
    live.abort()


# --- nothing silent ------------------------------------------------------------------------


def test_ignored_files_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = {
        "a/1.png": image_bytes(1),
        "a/notes.txt": b"labels live elsewhere",
        "b/2.png": image_bytes(2),
        "b/.DS_Store": b"\0\0",
        "README.md": b"# a data set",
    }
    source = write_folder(tmp_path / "src", files)
    expected = ["README.md", "a/notes.txt", "b/.DS_Store"]
    first = load_images(source, 8)
    assert first.ignored == 3 and first.ignored_files == expected
    second = load_images(source, 8)  # from the cache
    assert second.cache_path == first.cache_path and second.ignored_files == expected

    assert main(["data", "info", str(source), "--image-size", "8", "--show", "2"]) == 0
    out = capsys.readouterr().out
    assert "ignored non-image files: 3" in out
    assert "  README.md\n" in out and "  a/notes.txt\n" in out and "1 more ignored" in out

    # An entry written before names were kept still loads; info lists the source instead.
    assert first.cache_path is not None
    meta_file = first.cache_path / "meta.json"
    meta = json.loads(meta_file.read_text())
    del meta["ignored_files"]
    meta_file.write_text(json.dumps(meta))
    old = load_images(source, 8)
    assert old.cache_path == first.cache_path and old.ignored == 3 and old.ignored_files == []
    assert describe_source(source, 8).ignored_files == expected


# --- perturbed copies ----------------------------------------------------------------------


def _pixels(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB")).transpose(2, 0, 1).copy())


def test_perturb_keeps_every_image_when_names_clash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {
        "x/a.jpg": image_bytes(1, fmt="JPEG"),
        "x/a.png": image_bytes(2),
        "x/a__2.png": image_bytes(3),  # holds the first suffix already
        "x/b.jpg": image_bytes(4, fmt="JPEG"),
    }
    source = write_folder(tmp_path / "src", files)
    dst = tmp_path / "dst"
    assert main(["data", "perturb", str(source), str(dst), "-p", "blur:1"]) == 0
    out = capsys.readouterr().out
    assert "x/a.png -> x/a__3.png" in out and "wrote 4 images" in out
    written = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file())
    assert written == ["x/a.png", "x/a__2.png", "x/a__3.png", "x/b.png"]  # no temporary files
    where = {"x/a.jpg": "x/a.png", "x/a.png": "x/a__3.png", "x/a__2.png": "x/a__2.png"}
    blur = parse_perturbation("blur:1")
    for name, target in where.items():
        expected = blur(_pixels(source / name).unsqueeze(0))[0]
        assert torch.equal(_pixels(dst / target), expected), name

    plain = tmp_path / "plain.png"
    plain.write_bytes(b"")
    assert (dst / "x" / "a.png").stat().st_mode == plain.stat().st_mode  # umask, not 0600

    again = perturbed_copy.perturb_source(source, tmp_path / "again", "blur:1")
    assert again.renamed == [("x/a.png", "x/a__3.png")]
    for name in written:  # reproducible: same names, same bytes
        assert (tmp_path / "again" / name).read_bytes() == (dst / name).read_bytes()


def test_clashes_ignore_case_and_suffixes_are_stable() -> None:
    png = parse_perturbation("blur:1")
    names = ["b/A.jpg", "b/a.png", "b/a.gif", "c.jpeg"]
    expected = {"b/A.jpg": "b/A.png", "b/a.gif": "b/a__2.png", "b/a.png": "b/a__3.png"}
    expected["c.jpeg"] = "c.png"
    assert perturbed_copy.target_names(names, png) == expected
    assert perturbed_copy.target_names(names[::-1], png) == expected  # input order is irrelevant


def test_perturbed_files_are_written_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_folder(tmp_path / "src", {f"{i}.png": image_bytes(i) for i in range(3)})
    calls = []
    real_replace = os.replace

    def failing_replace(src: str, dst: str) -> None:
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(perturbed_copy.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space"):
        perturbed_copy.perturb_source(source, tmp_path / "dst", "noise:0.05")
    # The first image is whole; the failed one left neither a partial file nor a temporary one.
    assert sorted(p.name for p in (tmp_path / "dst").iterdir()) == ["0.png"]
    with Image.open(tmp_path / "dst" / "0.png") as im:
        im.load()

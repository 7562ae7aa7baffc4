"""One pass over a source: read every image once, decode in parallel, write a cache entry.

The main process reads bytes in archive order (sequential I/O, no extraction) and hands chunks
to worker processes that decode and hash them; results land in memory-mapped arrays, so even
a data set larger than RAM can be cached.

No process outlives the build: workers die with their parent however it ends (see
``watch_parent``), and the pool is killed when the build fails or is interrupted. The entry's
temporary folder is removed on failure, and by the next load when the parent was killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from realfake.data import decode as decode_module
from realfake.data.cache import CACHE_VERSION, EntryWriter
from realfake.data.decode import DecodedChunk, NativeChunk
from realfake.data.layout import Layout
from realfake.data.sources import Entry, Source
from realfake.errors import DataError

log = logging.getLogger(__name__)

# 1024 images of ~1 KB are ~1 MB to ship to a worker: large enough to hide the pickling,
# small enough to keep both cores busy until the end (60 chunks for CIFAKE's 60k).
CHUNK = 1024
# How often a worker checks that its parent still exists (the portable fallback, seconds).
PARENT_POLL = 0.5
# Linux prctl option: the signal a process receives when the thread that forked it exits.
PR_SET_PDEATHSIG = 1


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def build_entry(
    source: Source,
    layout: Layout,
    image_size: int,
    resize: str,
    cache_dir: Path,
    key: str,
    *,
    workers: int | None = None,
    chunk: int | None = None,
    native: NativeCap | None = None,
) -> Path:
    """Decode every image of ``layout`` into a new cache entry; returns its folder.

    With ``native`` the images keep their own size (``realfake.data.decode.fit_native``).
    """
    started = time.perf_counter()
    writer = EntryWriter(cache_dir, key)
    try:
        if native is None:
            meta = _fill(source, layout, image_size, resize, writer, workers, chunk or CHUNK)
        else:
            meta = _fill_native(
                source, layout, image_size, resize, native, writer, workers, chunk or CHUNK
            )
        meta.update(version=CACHE_VERSION, fingerprint=key, seconds=time.perf_counter() - started)
        path = writer.commit(meta)
    except BaseException:
        writer.abort()
        raise
    total = sum(s["count"] for s in meta["splits"].values())
    log.info("cached %d images from %s in %.1f s (%s)", total, source.path, meta["seconds"], path)
    return path


@dataclass(frozen=True)
class NativeCap:
    """Native decoding's limits: the largest side kept, and the most bytes of pixels a source
    may take (``data.native_max_side``, ``data.native_max_gb``)."""

    max_side: int
    max_bytes: int

    def refuse(self, where: object, found: str) -> DataError:
        """The one sentence that refuses a source over the byte cap."""
        return DataError(
            f"the native pixels of {where} exceed data.native_max_gb = "
            f"{self.max_bytes / 1e9:g} GB ({found}); expected a data set within the cap: raise "
            "data.native_max_gb, lower data.native_max_side, or set data.native=false"
        )


def _fill(
    source: Source,
    layout: Layout,
    size: int,
    resize: str,
    writer: EntryWriter,
    workers: int | None,
    chunk: int,
) -> dict:
    # Every image gets a (split, row) target; reading follows archive order across splits.
    targets: dict[str, tuple[str, int]] = {}
    entries: list[Entry] = []
    outputs: dict[str, dict[str, np.ndarray]] = {}
    for split, items in layout.splits.items():
        n = len(items)
        outputs[split] = {
            "images": writer.images(split, n, size),
            "sizes": np.zeros((n, 2), np.int32),
            "md5": np.zeros((n, 16), np.uint8),
            "ok": np.ones(n, bool),
        }
        for row, (entry, _) in enumerate(items):
            targets[entry.name] = (split, row)
            entries.append(entry)
    total = len(entries)
    log.info(
        "decoding %d images from %s (first use; later loads read the cache)", total, source.path
    )
    reasons: dict[tuple[str, int], str] = {}
    # closing(): an error in this loop closes the stream at once, which kills its pool, on
    # any Python (without it, only CPython's reference counting would close it right away).
    stream = _decode_stream(source, entries, size, resize, workers, chunk, None)
    with contextlib.closing(stream):
        for batch, result in stream:
            where = [targets[entry.name] for entry in batch]
            # One fancy-indexed copy per split and chunk instead of a Python loop over images.
            for split in {s for s, _ in where}:
                idx = np.array([i for i, (s, _) in enumerate(where) if s == split])
                rows = np.array([where[i][1] for i in idx])
                out = outputs[split]
                out["images"][rows] = result.images[idx]
                out["sizes"][rows] = result.sizes[idx]
                out["md5"][rows] = result.md5[idx]
            for i, reason in result.failures:
                split, row = where[i]
                outputs[split]["ok"][row] = False
                reasons[(split, row)] = reason

    meta_splits, skipped = {}, []
    content = hashlib.sha256()
    for split, items in layout.splits.items():
        out = outputs[split]
        keep = out["ok"]
        skipped += [[items[row][0].name, reasons[(split, row)]] for row in np.flatnonzero(~keep)]
        if isinstance(out["images"], np.memmap):
            out["images"].flush()
        if not keep.all():
            writer.compact(split, out["images"], keep)
        out.pop("images")
        names = _save_split(writer, split, items, keep, out, content)
        meta_splits[split] = {"count": len(names), "names": names}
    return _entry_meta(source, layout, size, resize, meta_splits, skipped, content)


def _save_split(
    writer: EntryWriter,
    split: str,
    items: list[tuple[Entry, int]],
    keep: np.ndarray,
    out: dict[str, np.ndarray],
    content: Any,
) -> list[str]:
    """Labels, original sizes and MD5s of a split's decoded images, saved; the content hash
    updated with them; their names returned."""
    kept = [items[row] for row in np.flatnonzero(keep)]
    labels = np.array([label for _, label in kept], np.int64)
    writer.save(split, "labels", labels)
    writer.save(split, "sizes", out["sizes"][keep])
    writer.save(split, "md5", out["md5"][keep])
    names = [entry.name for entry, _ in kept]
    # Identity of the content alone (names, labels, bytes), whatever the container.
    content.update(split.encode())
    for name, label, digest in zip(names, labels.tolist(), out["md5"][keep], strict=True):
        content.update(f"{name}\0{label}\0".encode() + digest.tobytes())
    return names


def _entry_meta(
    source: Source,
    layout: Layout,
    size: int,
    resize: str,
    meta_splits: dict,
    skipped: list,
    content: Any,
    **extra: Any,
) -> dict:
    """The cache entry's meta record (``extra``: the native entry's own fields)."""
    listing = source.listing()
    return {
        "source": str(source.path),
        "kind": source.kind,
        "layout": layout.kind,
        "image_size": size,
        "resize": resize,
        **extra,
        "classes": layout.classes,
        "splits": meta_splits,
        "ignored": len(listing.ignored),
        "ignored_files": list(listing.ignored),
        "skipped": skipped,
        "content_hash": content.hexdigest()[:20],
    }


def _fill_native(
    source: Source,
    layout: Layout,
    size: int,
    resize: str,
    cap: NativeCap,
    writer: EntryWriter,
    workers: int | None,
    chunk: int,
) -> dict:
    """``_fill`` at native size: images land back to back in a scratch file per split as they
    arrive (archive order), then are written in row order, N×3×H×W when they share one size."""
    targets: dict[str, tuple[str, int]] = {}
    entries: list[Entry] = []
    rows: dict[str, dict[str, np.ndarray]] = {}
    for split, items in layout.splits.items():
        n = len(items)
        rows[split] = {
            "offsets": np.zeros(n, np.int64),
            "shapes": np.zeros((n, 2), np.int64),
            "sizes": np.zeros((n, 2), np.int32),
            "md5": np.zeros((n, 16), np.uint8),
            "ok": np.ones(n, bool),
            "resized": np.zeros(n, bool),
        }
        for row, (entry, _) in enumerate(items):
            targets[entry.name] = (split, row)
            entries.append(entry)
    total = len(entries)
    # Every image keeps at least size×size pixels: a source too large even so is refused
    # before anything is decoded.
    if total * 3 * size * size > cap.max_bytes:
        least = total * 3 * size * size / 1e9
        raise cap.refuse(source.path, f"{total} images of {size}×{size} px or more: {least:.3g} GB")
    log.info(
        "decoding %d images from %s at their own size (first use; later loads read the cache)",
        total,
        source.path,
    )
    reasons: dict[tuple[str, int], str] = {}
    written = dict.fromkeys(layout.splits, 0)
    done = 0
    with contextlib.ExitStack() as stack:
        files = {
            split: stack.enter_context(writer.scratch(split).open("wb")) for split in layout.splits
        }
        stream = _decode_stream(source, entries, size, resize, workers, chunk, cap.max_side)
        stack.enter_context(contextlib.closing(stream))
        for batch, result in stream:
            failed = dict(result.failures)
            for i, entry in enumerate(batch):
                split, row = targets[entry.name]
                out = rows[split]
                out["md5"][row] = result.md5[i]
                done += 1
                if i in failed:
                    out["ok"][row] = False
                    reasons[(split, row)] = failed[i]
                    continue
                h, w = result.shapes[i].tolist()
                start = int(result.offsets[i])
                files[split].write(result.pixels[start : start + 3 * h * w].tobytes())
                out["offsets"][row], out["shapes"][row] = written[split], (h, w)
                out["sizes"][row], out["resized"][row] = result.sizes[i], result.resized[i]
                written[split] += 3 * h * w
            if sum(written.values()) > cap.max_bytes:
                found = f"{sum(written.values()) / 1e9:.3g} GB after {done} of {total} images"
                raise cap.refuse(source.path, found)

    meta_splits, skipped, resized = {}, [], []
    content = hashlib.sha256()
    for split, items in layout.splits.items():
        out = rows[split]
        keep = out["ok"]
        skipped += [[items[row][0].name, reasons[(split, row)]] for row in np.flatnonzero(~keep)]
        ragged = _write_native(writer, split, out["offsets"][keep], out["shapes"][keep], size)
        names = _save_split(writer, split, items, keep, out, content)
        meta_splits[split] = {"count": len(names), "names": names, "ragged": ragged}
        for row in np.flatnonzero(out["resized"] & keep):
            w, h = out["sizes"][row].tolist()
            resized.append([items[row][0].name, w, h])  # named with its original size
    return _entry_meta(
        source,
        layout,
        size,
        resize,
        meta_splits,
        skipped,
        content,
        native_max_side=cap.max_side,
        native_bytes=sum(written.values()),
        resized=resized,
    )


def _write_native(
    writer: EntryWriter, split: str, offsets: np.ndarray, shapes: np.ndarray, size: int
) -> bool:
    """Write a split's scratch pixels in row order; returns whether the split is ragged.

    One image size: an N×3×H×W images file, as a resized split has; mixed sizes: the pixels
    back to back with their offsets and shapes (realfake.data.ragged).
    """
    scratch = writer.scratch(split)
    lengths = 3 * shapes.prod(axis=1)
    arrived = np.memmap(scratch, np.uint8, "r") if lengths.sum() else np.zeros(0, np.uint8)
    ragged = len(shapes) > 0 and bool((shapes != shapes[0]).any())
    if ragged:
        out = writer.array(f"{split}.pixels", (int(lengths.sum()),))
        start = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        writer.save(split, "offsets", start)
        writer.save(split, "shapes", shapes)
        flat = out
    else:
        h, w = shapes[0].tolist() if len(shapes) else (size, size)
        out = writer.images(split, len(shapes), h, w)
        flat = out.reshape(-1)
        start = np.arange(len(shapes), dtype=np.int64) * 3 * h * w
    # One image at a time: memory stays at one image however large the split.
    for src, dst, n in zip(offsets.tolist(), start.tolist(), lengths.tolist(), strict=True):
        flat[dst : dst + n] = arrived[src : src + n]
    if isinstance(out, np.memmap):
        out.flush()
    del out, flat, arrived
    scratch.unlink()
    return ragged


def _blobs(source: Source, entries: list[Entry]) -> Iterator[tuple[Entry, bytes | str]]:
    """Bytes of each entry, or a string saying why they could not be read."""
    for entry, data in source.read(entries):
        if isinstance(data, Exception):
            yield entry, f"cannot read ({type(data).__name__}: {data})"
        else:
            yield entry, data


def _chunks(
    source: Source, entries: list[Entry], chunk: int
) -> Iterator[tuple[list[Entry], list[bytes | str]]]:
    batch: list[Entry] = []
    blobs: list[bytes | str] = []
    for entry, blob in _blobs(source, entries):
        batch.append(entry)
        blobs.append(blob)
        if len(batch) == chunk:
            yield batch, blobs
            batch, blobs = [], []
    if batch:
        yield batch, blobs


def _decode_stream(
    source: Source,
    entries: list[Entry],
    size: int,
    resize: str,
    workers: int | None,
    chunk: int,
    native_max_side: int | None,
) -> Iterator[tuple[list[Entry], DecodedChunk | NativeChunk]]:
    """Decoded chunks (DecodedChunk, or NativeChunk with ``native_max_side``), from a process
    pool when there is enough work to pay for one."""
    if native_max_side is None:
        decode: Any = decode_module.decode_chunk
        args: tuple = (size, resize)
    else:
        decode, args = decode_module.decode_native_chunk, (size, resize, native_max_side)
    workers = available_cpus() if workers is None else workers
    workers = min(workers, -(-len(entries) // chunk))
    if workers <= 1:
        for batch, blobs in _chunks(source, entries, chunk):
            yield batch, decode(blobs, *args)
        return
    # fork starts workers instantly and shares the imported modules; elsewhere (macOS, Windows)
    # the platform default is the safe choice.
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else None)
    pending: deque[tuple[list[Entry], Future[Any]]] = deque()
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=watch_parent,
        initargs=(os.getpid(),),
    )
    finished = False
    try:
        for batch, blobs in _chunks(source, entries, chunk):
            pending.append((batch, pool.submit(decode, blobs, *args)))
            # Bounded read-ahead: memory stays at a few chunks however large the source.
            while len(pending) > 2 * workers:
                done_batch, future = pending.popleft()
                yield done_batch, future.result()
        while pending:
            done_batch, future = pending.popleft()
            yield done_batch, future.result()
        finished = True
    finally:
        # Any way out but the end (an error, KeyboardInterrupt, the consumer closing the
        # stream): kill the workers instead of waiting for the chunks still queued.
        if finished:
            pool.shutdown(wait=True)
        else:
            _kill_pool(pool)


def _kill_pool(pool: ProcessPoolExecutor, timeout: float = 10.0) -> None:
    """Kill the pool's workers now and wait (bounded) until they and its thread are gone."""
    # The executor has no public way to kill its processes before Python 3.14
    # (terminate_workers); its process table and manager thread are read defensively.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    manager = getattr(pool, "_executor_manager_thread", None)
    for process in processes:
        with contextlib.suppress(Exception):  # already gone
            process.kill()
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    if manager is not None:
        manager.join(max(0.0, deadline - time.monotonic()))
    alive = [p.pid for p in processes if p.is_alive()]
    if alive:  # pragma: no cover - a worker that ignores SIGKILL (stuck in the kernel)
        log.warning("decoding workers %s did not stop within %.0f s", alive, timeout)


def watch_parent(parent: int) -> None:
    """Worker initialiser: die with the parent ``parent``, and leave Ctrl-C to the parent.

    Without this a SIGKILLed parent leaves its workers blocked on the task queue forever
    (they hold its pipe's write end themselves, so they never see end-of-file). Two guards:

    * Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, so the kernel kills the worker the moment the
      parent dies, whatever killed it (SIGKILL included; no cleanup code has to run). It fires
      when the *thread* that forked the worker exits; the pool's workers are forked by the
      thread that iterates the stream, which outlives the pool.
    * everywhere: a daemon thread that polls ``os.getppid()`` and exits the worker once it is
      no longer ``parent`` (the orphan was re-parented), for systems without prctl and as a
      second line if the signal is ever not delivered.

    A process group was not chosen: killing the group needs someone alive to do it, which is
    exactly what a SIGKILLed parent is not.
    """
    # SIGINT (Ctrl-C) reaches the whole foreground group; the parent handles it and kills the
    # pool, so workers neither die half-way with a traceback each nor race the parent.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform == "linux":
        with contextlib.suppress(Exception):  # no prctl: the thread below suffices
            # CDLL(None): the symbols already loaded, libc's among them (find_library would
            # start ldconfig in every worker).
            libc = ctypes.CDLL(None, use_errno=True)
            arg = ctypes.c_ulong  # prctl takes unsigned longs: pass them at full width
            libc.prctl(PR_SET_PDEATHSIG, arg(signal.SIGKILL), arg(0), arg(0), arg(0))
    # The parent may have died between the fork and prctl: then no signal will ever come.
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=_poll_parent, args=(parent,), daemon=True, name="watch-parent").start()


def _poll_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL)
    os._exit(1)  # no cleanup: the worker owns nothing the parent's next run needs

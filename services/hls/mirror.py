"""Optional disk mirror: ``CAMHUB_HLS_DIR/<stream>/`` for users who serve HLS with nginx.

Every new init segment, part and complete segment is written, then the playlists, so a listed
file is always on disk before the playlist that lists it; files that leave the store are
deleted.  Each file is written to a temporary name and renamed (readers never see half a file).
File I/O runs in a worker thread via one writer task per stream, fed by a bounded queue: the
event loop never waits for the disk, and when the disk falls behind by more than ``max_queue``
operations new ones are dropped and counted in :attr:`DiskMirror.dropped`.

A static server cannot hold blocking playlist requests; players then poll ``stream_ll.m3u8``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from pathlib import Path

from services.hls import names
from services.hls.packager import StreamPackager, Update

log = logging.getLogger("camhub.hls.mirror")

_OURS = re.compile(r"(seg\d+\.(ts|m4s)|part\d+\.\d+\.m4s|init\d*\.mp4|stream(_ll)?\.m3u8)(\.tmp)?")
Op = tuple[str, bytes | None]  # (file name, bytes to write | None to delete)


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _apply(root: Path, ops: list[Op]) -> None:
    for name, data in ops:
        path = root / name
        if data is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        else:
            _write(path, data)


def _clean(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for entry in root.iterdir():
        if _OURS.fullmatch(entry.name):
            with contextlib.suppress(OSError):
                entry.unlink()


class DiskMirror:
    """Mirrors one packager into ``root`` (created; old camhub files in it are removed)."""

    def __init__(self, root: Path, *, max_queue: int = 256) -> None:
        self.root = root
        self._queue: asyncio.Queue[list[Op]] = asyncio.Queue(max_queue)
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.errors = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"hls-mirror:{self.root.name}")

    def apply(self, packager: StreamPackager, update: Update) -> None:
        """Queue the files ``update`` made or removed, then the playlists (never blocks)."""
        if not update.changed and not update.evicted:
            return
        ops: list[Op] = []
        for gen in update.generations:
            data = packager.window.inits.get(gen)
            if data is not None:
                ops += [(names.init_mp4(gen), data), (names.INIT_LATEST, data)]
        for msn, index in update.parts:
            item = packager.lookup(names.Resource("part", msn, index))
            if item is not None:
                ops.append((names.part_m4s(msn, index), bytes(item.data)))
        for msn in update.completed:
            seg = packager.window.find(msn)
            if seg is not None and seg.ts is not None:
                ops.append((names.seg_ts(msn), seg.ts))
            if seg is not None and seg.m4s is not None:
                ops.append((names.seg_m4s(msn), seg.m4s))
        for ll, name in ((False, names.PLAYLIST), (True, names.PLAYLIST_LL)):
            text = packager.playlist(ll)
            if text is not None:
                ops.append((name, text.encode()))
        ops += [(name, None) for name in update.evicted]
        try:
            self._queue.put_nowait(ops)
        except asyncio.QueueFull:
            self.dropped += 1

    async def _run(self) -> None:
        try:
            await asyncio.to_thread(_clean, self.root)
        except OSError as exc:
            log.warning("HLS mirror %s unusable: %s", self.root, exc)
        while True:
            ops = await self._queue.get()
            try:
                await asyncio.to_thread(_apply, self.root, ops)
            except OSError as exc:
                self.errors += 1
                if self.errors <= 3:
                    log.warning("HLS mirror write to %s failed: %s", self.root, exc)
            finally:
                self._queue.task_done()

    async def close(self, timeout: float = 3.0) -> None:
        """Finish queued writes (bounded by ``timeout``), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

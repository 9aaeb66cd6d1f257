"""One stream's HLS packager: access units in, segments, parts and playlists out; no I/O.

:class:`StreamPackager` is fed frames (:meth:`push`) and source events (:meth:`discontinuity`,
:meth:`end`) and keeps a :class:`~services.hls.window.Window`.  Each call returns an
:class:`Update` naming what became available, so the async shell can wake blocked requests,
mirror files to disk and persist the media sequence.  Serving reads :meth:`playlist` and
:meth:`lookup`.

Behaviour (RFC 8216 / 8216bis, issue #4):

* Packaged codecs: H.264 (MPEG-TS segments for ``stream.m3u8`` and, with LL-HLS on, fMP4 parts
  for ``stream_ll.m3u8``), H.265 and AV1 (fMP4 only; ``stream.m3u8`` then lists the fMP4
  segments).  Other codecs (VP8, VP9, JPEG, WebP) are counted as dropped.
* Frames before the first keyframe, and after a source discontinuity until the next keyframe, are
  dropped.  H.264/H.265 keyframes get the stream's parameter sets in front when they lack them.
* A segment that follows a discontinuity (source restart, codec or parameter-set change, a source
  clock jump of more than ``max_jump_seconds``, or taking over from a previous owner) carries
  ``EXT-X-DISCONTINUITY`` and starts a new fMP4 generation (new init segment).
* The media sequence continues from :class:`Resume` (where a previous owner stopped); it never
  restarts at 0 for a stream that was packaged before.
* ``EXT-X-TARGETDURATION`` is the configured target rounded up, raised (never lowered) when a
  segment ran longer (a GOP longer than the target).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from services.common import h264
from services.common.frames import Frame
from services.hls import names, playlist
from services.hls.mux import FMP4_CODECS, TS_CODECS, Fmp4Writer, MuxError, TsSegmentWriter, probe_dimensions
from services.hls.names import Resource
from services.hls.segmenter import Segmenter
from services.hls.timeline import CLOCK_HZ, Timeline
from services.hls.window import Part, Segment, Window
from services.hls.wire import PACKAGED_CODECS

MPEGTS = "video/mp2t"
MP4 = "video/mp4"


@dataclass(frozen=True, slots=True)
class PackagerConfig:
    """Tuning; seconds unless noted.  ``grace``: segments kept after they leave the playlist
    (default: ``window``, RFC 8216 6.2.2)."""

    segment_seconds: float = 2.0
    part_seconds: float = 0.333
    window: int = 7
    low_latency: bool = True
    grace: int | None = None
    max_jump_seconds: float = 5.0


@dataclass(frozen=True, slots=True)
class Resume:
    """Where the previous packager of this stream stopped (persisted in KV ``camhub-hls``).

    ``msn``: the next media sequence number to use; ``dsn``: discontinuity sequence number of the
    last segment it opened; ``dts``: output-timeline tick from which new timestamps may start.
    """

    msn: int
    dsn: int
    dts: int


@dataclass(slots=True)
class Update:
    """What one call changed: segments ``opened`` and ``completed`` (msn), ``parts`` completed
    (msn, index), new init ``generations``, and resource names ``evicted`` from the store."""

    opened: list[int] = field(default_factory=list)
    completed: list[int] = field(default_factory=list)
    parts: list[tuple[int, int]] = field(default_factory=list)
    generations: list[int] = field(default_factory=list)
    evicted: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.opened or self.completed or self.parts or self.generations)


@dataclass(frozen=True, slots=True)
class Item:
    """A servable resource: its bytes, Content-Type, and whether it may be cached for good."""

    data: bytes | memoryview
    content_type: str
    immutable: bool


class StreamPackager:
    """Packages one stream.  ``wall`` returns the wall clock in s (tests inject their own)."""

    def __init__(
        self,
        stream: str,
        config: PackagerConfig | None = None,
        *,
        resume: Resume | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.stream = stream
        self.config = cfg = config or PackagerConfig()
        self._wall = wall
        self._target_ticks = round(cfg.segment_seconds * CLOCK_HZ)
        self._part_ticks = round(cfg.part_seconds * CLOCK_HZ)
        max_jump = round(max(cfg.max_jump_seconds, 2 * cfg.segment_seconds) * CLOCK_HZ)
        self.timeline = Timeline(base=resume.dts if resume else 0, max_jump=max_jump)
        self.window = Window(cfg.window, cfg.window if cfg.grace is None else cfg.grace)
        self._segmenter: Segmenter | None = None
        self._next_msn = resume.msn if resume else 0
        self._dsn = resume.dsn if resume else 0
        self._pending_dis = resume is not None
        self._await_key = False
        # source description (StreamInfo)
        self._info_codec = ""
        self._info_config = b""
        self._width = 0
        self._height = 0
        # current codec / generation
        self._codec: str | None = None
        self._params = b""
        self._fmp4: Fmp4Writer | None = None
        self._ts: TsSegmentWriter | None = None
        self._part_buf = bytearray()
        self._part_index = 0
        self._part_start = 0
        self._part_independent = False
        self._anchor = (0.0, 0)  # (wall s, output dts) of the generation's first frame
        self._max_segment_ticks = 0
        self._max_part_ticks = 0
        self.frames = 0
        self.dropped: dict[str, int] = {}
        self.ended = False

    # ---- source side ------------------------------------------------------------------

    def set_source(self, codec: str, width: int = 0, height: int = 0, config: bytes = b"") -> None:
        """The stream's StreamInfo: ``codec``, picture size (px) and in-band codec config."""
        self._info_codec = codec
        self._info_config = config
        if width > 0 and height > 0:
            self._width, self._height = width, height

    def discontinuity(self) -> Update:
        """The source restarted (``discontinuity`` event): drop frames until the next keyframe,
        which starts a new segment with ``EXT-X-DISCONTINUITY`` on a rebased timeline."""
        self._pending_dis = True
        self._await_key = True
        self.timeline.restart()
        return Update()

    def end(self) -> Update:
        """The source went away (``down`` event, or no frames for a while): complete the open
        segment now so every received frame is listed; the next frames start after a
        discontinuity."""
        up = Update()
        if self.window.open is not None:
            end = (self.timeline.last_dts or 0) + self.timeline.frame_ticks
            self._close_generation()
            self._finish_part(end, up)
            self._finish_segment(end, up)
        if self._segmenter is not None:
            self._segmenter.close()
        self._pending_dis = True
        self._await_key = True
        self.timeline.restart()
        self.ended = True
        return up

    def push(self, frame: Frame) -> Update:
        """Package one access unit (decode order).  Never raises for bad media: frames that
        cannot be packaged are counted in :attr:`dropped` by reason."""
        up = Update()
        if frame.codec not in PACKAGED_CODECS:
            return self._drop("codec", up)
        data = frame.data
        new_generation = False
        if self._codec is not None and frame.codec != self._codec:
            self._interrupt(up)
            new_generation = True
        if self._await_key and not frame.key:
            return self._drop("await-keyframe", up)
        if frame.key and frame.codec in ("h264", "h265"):
            config = self._info_config if self._info_codec == frame.codec else b""
            data = h264.with_parameter_sets(data, config, frame.codec)
            params = h264.parameter_sets(data, frame.codec)
            if not params and ((self._fmp4 is None and self._ts is None) or self._codec != frame.codec):
                return self._drop("no-parameter-sets", up)
            if params and self._params and params != self._params and not new_generation:
                self._interrupt(up)  # new SPS/PPS: new init segment, after a discontinuity
                new_generation = True
            if params:
                self._params = params
        seg = self._segmenter
        if seg is None or not seg.is_open:
            if not frame.key:
                return self._drop("before-keyframe", up)
            new_generation = True
        self._await_key = False
        mapped = self.timeline.map(frame.pts, frame.dts)
        if mapped.jump and seg is not None and seg.is_open:
            self._pending_dis = True
        if self._pending_dis and frame.key:
            new_generation = True
        self._codec = frame.codec
        try:
            self._place(frame, data, mapped.pts, mapped.dts, new_generation, up)
        except MuxError:
            # The muxer refused this frame: end the segment, start over at the next keyframe.
            self._drop("mux-error", up)
            self._recover(up)
        return up

    # ---- serving side -----------------------------------------------------------------

    @property
    def codec(self) -> str | None:
        return self._codec

    @property
    def target_duration(self) -> int:
        """EXT-X-TARGETDURATION, integer seconds (rounded up, never lowered)."""
        longest = self._max_segment_ticks / CLOCK_HZ
        return max(1, math.ceil(self.config.segment_seconds - 1e-3), math.ceil(longest - 1e-3))

    @property
    def part_target(self) -> float:
        """PART-TARGET in seconds: the configured part duration, or the longest part if longer
        (parts are cut to the nearest frame: 10 frames = 0.33333 s at 30 fps).  Parts longer than
        twice the configured duration (a source gap, a frame rate of 1-2 fps) do not raise it, so
        one gap cannot inflate PART-HOLD-BACK for the rest of the stream."""
        return max(self.config.part_seconds, self._max_part_ticks / CLOCK_HZ)

    @property
    def low_latency(self) -> bool:
        """True when ``stream_ll.m3u8`` is served (LL-HLS on and an fMP4 track is built)."""
        return self.config.low_latency and self._codec in FMP4_CODECS

    def playlist(self, ll: bool) -> str | None:
        """Playlist text, or None while no segment is complete (or LL is off for ``ll``)."""
        listed = self.window.listed()
        if not listed:
            return None
        if not ll:
            return playlist.render_standard(listed, self.target_duration)
        if not self.low_latency:
            return None
        return playlist.render_ll(listed, self.window.open, self.target_duration, self.part_target, self.hint())

    def hint(self) -> str | None:
        """URI of the part being built (EXT-X-PRELOAD-HINT), or None when the source is down."""
        open_seg = self.window.open
        if open_seg is None or open_seg.generation is None:
            return None
        return names.part_m4s(open_seg.msn, len(open_seg.parts))

    def lookup(self, res: Resource) -> Item | None:
        """The bytes of a segment, part or init segment, or None when not (yet / any more) kept."""
        if res.kind == "init":
            gen = self.window.latest_init if res.msn < 0 else res.msn
            data = self.window.inits.get(gen) if gen is not None else None
            return Item(data, MP4, res.msn >= 0) if data is not None else None
        seg = self.window.find(res.msn)
        if seg is None:
            return None
        if res.kind == "ts" and seg.ts is not None:
            return Item(seg.ts, MPEGTS, True)
        if res.kind == "m4s" and seg.m4s is not None:
            return Item(seg.m4s, MP4, True)
        if res.kind == "part" and 0 <= res.part < len(seg.parts):
            return Item(seg.parts[res.part].data, MP4, True)
        return None

    # services.hls.blocking.Progress
    def last_complete_msn(self) -> int | None:
        last = self.window.last_complete
        return last.msn if last is not None else None

    def open_msn(self) -> int | None:
        return self.window.open.msn if self.window.open is not None else None

    def open_parts(self) -> int:
        return len(self.window.open.parts) if self.window.open is not None else 0

    def part_count(self, msn: int) -> int | None:
        seg = self.window.find(msn)
        if seg is None or not seg.complete or seg.generation is None:
            return None
        return len(seg.parts)

    def resume_state(self) -> Resume:
        """What a successor needs to continue this stream (see :class:`Resume`)."""
        open_seg = self.window.open
        dts = open_seg.start_dts if open_seg is not None else self.timeline.next_dts
        return Resume(self._next_msn, self._dsn, dts)

    # ---- internals --------------------------------------------------------------------

    def _drop(self, reason: str, up: Update) -> Update:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        return up

    def _interrupt(self, up: Update) -> None:
        """Codec or parameter sets changed: complete the open segment; the frame at hand (a
        keyframe) then starts a new generation after a discontinuity."""
        if self.window.open is not None:
            end = (self.timeline.last_dts or 0) + self.timeline.frame_ticks
            self._close_generation()
            self._finish_part(end, up)
            self._finish_segment(end, up)
        if self._segmenter is not None:
            self._segmenter.close()
        self._fmp4 = None
        self._params = b""
        self._pending_dis = True
        self._await_key = True

    def _recover(self, up: Update) -> None:
        try:
            self._interrupt(up)
        except MuxError:
            self.window.open = None
            self._fmp4 = None
            self._ts = None
            self._part_buf.clear()

    def _place(self, frame: Frame, data: bytes, pts: int, dts: int, new_generation: bool, up: Update) -> None:
        codec = frame.codec
        if self._segmenter is None:
            part = self._part_ticks if self.config.low_latency else None
            self._segmenter = Segmenter(self._target_ticks, part)
        ticks = self.timeline.frame_ticks
        cut = self._segmenter.place(dts, frame.key, ticks, force=new_generation)
        if cut is None:  # not reachable: callers only pass keyframes when no segment is open
            self._drop("before-keyframe", up)
            return
        muxed = False
        if cut.segment:
            if self.window.open is not None:
                if new_generation:
                    self._close_generation()
                elif self._fmp4 is not None:
                    self._part_buf += self._fmp4.add(data, pts, dts, frame.key, ticks)
                    muxed = True
                self._finish_part(dts, up)
                self._finish_segment(dts, up)
            self._open_segment(frame, codec, data, dts, new_generation, up)
        elif cut.part:
            if self._fmp4 is not None:
                self._part_buf += self._fmp4.add(data, pts, dts, frame.key, ticks)
                muxed = True
            self._finish_part(dts, up)
            self._start_part(dts, frame.key)
        if self._fmp4 is not None and not muxed:
            self._part_buf += self._fmp4.add(data, pts, dts, frame.key, ticks)
            if self._fmp4.init is not None and self.window.open is not None:
                gen = self.window.open.generation
                if gen is not None and gen not in self.window.inits:
                    self.window.add_init(gen, self._fmp4.init)
                    up.generations.append(gen)
        if self._ts is not None:
            self._ts.add(data, pts, dts, frame.key, ticks)
        if self.window.open is not None:
            self.window.open.frames += 1
        self.frames += 1
        self.ended = False

    def _open_segment(self, frame: Frame, codec: str, data: bytes, dts: int, new_generation: bool, up: Update) -> None:
        dis = self._pending_dis
        msn = self._next_msn
        self._next_msn += 1
        if dis:
            self._dsn += 1
        use_fmp4 = codec in FMP4_CODECS and (self.config.low_latency or codec not in TS_CODECS)
        if new_generation:
            self._fmp4 = None
            if use_fmp4:
                if self._width <= 0 or self._height <= 0:
                    self._width, self._height = probe_dimensions(codec, data)
                self._fmp4 = Fmp4Writer(codec, self._width, self._height)
            wall = frame.ts_ns / 1e9 if frame.ts_ns > 0 else self._wall()
            self._anchor = (wall, dts)
        generation = None
        if self._fmp4 is not None:
            generation = msn if new_generation else self.window.latest_init
        self._ts = TsSegmentWriter(codec) if codec in TS_CODECS else None
        pdt = self._anchor[0] + (dts - self._anchor[1]) / CLOCK_HZ
        self.window.begin(Segment(msn, dts, pdt, dis, self._dsn, generation))
        self._pending_dis = False
        self._start_part(dts, True)
        up.opened.append(msn)

    def _start_part(self, dts: int, independent: bool) -> None:
        self._part_start = dts
        self._part_independent = independent
        self._part_buf.clear()

    def _finish_part(self, end: int, up: Update) -> None:
        seg = self.window.open
        if seg is None or seg.generation is None:
            self._part_buf.clear()
            return
        duration = max(1, end - self._part_start)
        index = len(seg.parts)
        self.window.add_part(Part(index, duration, self._part_independent, bytes(self._part_buf)))
        self._part_buf.clear()
        if duration <= 2 * self._part_ticks:
            self._max_part_ticks = max(self._max_part_ticks, duration)
        up.parts.append((seg.msn, index))

    def _finish_segment(self, end: int, up: Update) -> None:
        seg = self.window.open
        if seg is None:
            return
        ts = self._ts.finish() if self._ts is not None else None
        self._ts = None
        done, evicted = self.window.complete(end - seg.start_dts, ts)
        self._max_segment_ticks = max(self._max_segment_ticks, done.duration)
        up.completed.append(done.msn)
        up.evicted += evicted

    def _close_generation(self) -> None:
        if self._fmp4 is not None:
            writer, self._fmp4 = self._fmp4, None
            self._part_buf += writer.close()

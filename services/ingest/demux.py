"""Demuxed packets -> camhub frames: Annex B access units with 90 kHz timestamps.

:class:`PacketConverter` takes what PyAV's demuxer gives for one H.264/H.265 stream (packet bytes,
``pts``/``dts`` in the stream ``time_base``, extradata) and returns :class:`~services.common.frames.Frame`
objects as docs/frames.md wants them, without touching any socket, so it is tested with packets
from a real encoder and recorded clips:

* AVCC/hvcC (ISO/IEC 14496-15: big-endian NAL lengths, ``avcC``/``hvcC`` extradata) becomes
  Annex B; Annex B (RTSP/RTP, MPEG-TS) passes through.  ``config`` holds the extradata's parameter
  sets as Annex B;
* access units: FFmpeg's RTSP demuxer splits a multi-slice IDR into two packets when the camera
  repeats SPS/PPS before each slice (gst ``rtph264pay config-interval=-1`` does); a packet whose
  first slice does not start a picture (H.264 ``first_mb_in_slice`` != 0, H.265
  ``first_slice_segment_in_pic_flag`` = 0) and has the same timestamp is merged into the access
  unit before it.  To allow that, a keyframe is held until the next packet arrives (one frame of
  delay on keyframes only; other frames leave at once);
* timestamps are converted to 90 kHz; a packet without ``pts`` uses its ``dts`` (and the other way
  round); packets with neither (FFmpeg's RTSP demuxer gives the first ones before the first RTCP
  sender report) are held and, once a timestamped packet arrives, back-filled one frame duration
  apart.  At most :data:`MAX_HELD` are held; beyond that they are dropped.

Errors: :class:`ConvertError` for a truncated length-prefixed NAL unit (the caller drops it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction

from services.common import h264
from services.common.frames import CLOCK_HZ, Frame

MAX_HELD = 32
CODECS = {"h264": "h264", "hevc": "h265", "h265": "h265"}


class ConvertError(ValueError):
    """A packet cannot be turned into an access unit (truncated NAL unit)."""


def starts_picture(au: bytes, codec: str) -> bool:
    """True when the first coded slice of ``au`` is the first of its picture (H.264 7.3.3
    ``first_mb_in_slice`` == 0, i.e. its ue(v) code starts with bit 1; H.265 7.3.6.1
    ``first_slice_segment_in_pic_flag``).  Access units without a slice count as starting one."""
    for nal in h264.iter_nals(au):
        t = h264.nal_type(nal, codec)
        if codec == "h265":
            if t < 32:
                return len(nal) > 2 and bool(nal[2] & 0x80)
        elif 1 <= t <= 5:
            return len(nal) > 1 and bool(nal[1] & 0x80)
    return True


@dataclass(slots=True)
class _Entry:
    data: bytes
    key: bool
    pts: int | None
    dts: int | None
    ts_ns: int


@dataclass
class PacketConverter:
    """Converter for one stream.

    Args:
        codec: camhub codec, ``h264`` or ``h265``.
        extradata: the stream's extradata (``avcC``/``hvcC`` record or Annex B parameter sets).
        time_base: the stream's time base (RTSP: 1/90000; MP4: the track timescale).
        fps: frames per second, for back-filling timestamps (0: 30 assumed).
    """

    codec: str
    extradata: bytes = b""
    time_base: Fraction = Fraction(1, CLOCK_HZ)
    fps: float = 0.0
    config: bytes = field(init=False, default=b"")
    length_size: int = field(init=False, default=4)
    length_prefixed: bool = field(init=False, default=False)
    dropped: int = field(init=False, default=0)
    merged: int = field(init=False, default=0)
    _queue: list[_Entry] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if self.codec not in ("h264", "h265"):
            raise ValueError(f"unsupported codec {self.codec!r}")
        extra = bytes(self.extradata or b"")
        if extra and not h264.is_annexb(extra):
            self.length_prefixed = True
        if self.codec == "h265":
            self.config, self.length_size = h264.hvcc_extradata_to_annexb(extra)
        else:
            self.config, self.length_size = h264.avcc_extradata_to_annexb(extra)
        self.config = h264.parameter_sets(self.config, self.codec) or self.config

    def ticks(self, value: int) -> int:
        """``value`` in the stream time base -> 90 kHz ticks."""
        tb = self.time_base
        return (value * tb.numerator * CLOCK_HZ) // tb.denominator

    @property
    def frame_ticks(self) -> int:
        return round(CLOCK_HZ / (self.fps if self.fps and self.fps > 0 else 30.0))

    def annexb(self, data: bytes) -> bytes:
        """The packet as Annex B.

        Raises:
            ConvertError: a NAL length runs past the end of the packet.
        """
        if self.length_prefixed or not h264.is_annexb(data):
            try:
                return h264.length_prefixed_to_annexb(data, self.length_size)
            except ValueError as exc:
                raise ConvertError(str(exc)) from None
        return data

    def convert(self, data: bytes, pts: int | None, dts: int | None, now_ns: int | None = None) -> list[Frame]:
        """Frames ready after one demuxed packet (none while it is held, several when held
        packets are released).

        Raises:
            ConvertError: truncated length-prefixed NAL unit.
        """
        if not data:
            return []
        au = self.annexb(data)
        ts_ns = time.time_ns() if now_ns is None else now_ns
        p = self.ticks(pts) if pts is not None else None
        d = self.ticks(dts) if dts is not None else None
        if p is None:
            p = d
        if d is None:
            d = p
        last = self._queue[-1] if self._queue else None
        if last is not None and (last.pts is None or p is None or last.pts == p) and not starts_picture(au, self.codec):
            last.data += au
            last.key = last.key or h264.is_keyframe(au, self.codec)
            if last.pts is None and p is not None:
                last.pts, last.dts = p, d
            self.merged += 1
        else:
            untimed = sum(1 for e in self._queue if e.pts is None)
            if p is None and untimed >= MAX_HELD:
                self.dropped += 1
                return []
            self._queue.append(_Entry(au, h264.is_keyframe(au, self.codec), p, d, ts_ns))
        return self._release(final=False)

    def flush(self) -> list[Frame]:
        """Everything still held (the stream ended)."""
        return self._release(final=True)

    def _release(self, final: bool) -> list[Frame]:
        q = self._queue
        # back-fill entries without timestamps from the next timestamped one
        step = self.frame_ticks
        for i, e in enumerate(q):
            if e.pts is not None:
                continue
            nxt = next((j for j in range(i + 1, len(q)) if q[j].dts is not None), None)
            if nxt is not None:
                base = q[nxt].dts
                assert base is not None
                e.pts = e.dts = base - (nxt - i) * step
            elif final:
                prev = q[i - 1].dts if i > 0 else None
                e.pts = e.dts = (prev + step) if prev is not None else 0
        ready = 0
        for i, e in enumerate(q):
            if e.pts is None:
                break
            is_last = i == len(q) - 1
            if is_last and e.key and not final:
                break  # a keyframe waits for the next packet, which may continue it
            ready = i + 1
        out = [Frame(self.codec, int(e.pts), int(e.dts), e.key, e.data, 0, e.ts_ns) for e in q[:ready]]  # type: ignore[arg-type]
        del q[:ready]
        return out

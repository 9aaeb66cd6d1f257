"""Container bytes from access units, with PyAV's muxers writing into memory.

* :class:`TsSegmentWriter`: one MPEG-TS media segment (ISO/IEC 13818-1) per instance, so every
  segment starts with PAT/PMT.  The mpegts muxer puts an access-unit delimiter in front of every
  H.264 access unit; the caller puts SPS/PPS in front of every IDR.  PTS/DTS are written as given
  (90 kHz, plus the muxer's constant ``max_delay`` lead), so they continue across segments.
* :class:`Fmp4Writer`: one fragmented-MP4 track (ISO/IEC 14496-12, CMAF brand) for H.264, H.265
  or AV1.  ``movflags=frag_every_frame`` makes libavformat write one ``moof``+``mdat`` per frame,
  flushed when the next frame arrives (it needs the next DTS for the sample duration); the
  packager groups those fragments into LL-HLS parts.  ``frag_discont`` with ``use_editlist=0``
  keeps ``tfdt`` on camhub's output timeline instead of restarting at 0.  The init segment
  (``ftyp`` + ``moov``, codec configuration taken from the first keyframe's parameter sets) is the
  header libavformat writes before the first fragment.

Cost (benchmarks/README.md, "HLS"): ``StreamPackager.push`` of a 720p frame into both
containers takes ~12 us at the median, a segment cut ~1 ms, so muxing stays on the event loop.

Errors: :class:`MuxError` wraps anything libavformat rejects (non-increasing DTS, broken data).
"""

from __future__ import annotations

from fractions import Fraction

import av
from av.stream import Stream
from av.video.codeccontext import VideoCodecContext

from services.hls.wire import PACKAGED_CODECS

TIME_BASE = Fraction(1, 90_000)
TS_CODECS = ("h264",)
FMP4_CODECS = PACKAGED_CODECS
_MUX_NAMES = {"h264": "h264", "h265": "hevc", "av1": "av1"}
_DECODERS = {"h264": "h264", "h265": "hevc", "av1": "libdav1d"}
FMP4_FLAGS = "frag_every_frame+empty_moov+default_base_moof+cmaf+frag_discont+skip_trailer"


class MuxError(RuntimeError):
    """libavformat refused an access unit or could not start the container."""


class _Sink:
    """A write-only, non-seekable file for PyAV: libavformat streams into it, never seeks back."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, chunk: bytes) -> int:
        self.data += chunk
        return len(chunk)

    def take(self) -> bytes:
        out = bytes(self.data)
        self.data.clear()
        return out


def _packet(stream: Stream, data: bytes, pts: int, dts: int, key: bool, duration: int) -> av.Packet[Stream]:
    pkt = av.Packet(data)
    pkt.pts, pkt.dts, pkt.time_base = pts, dts, TIME_BASE
    pkt.duration = max(1, duration)
    pkt.is_keyframe = key
    pkt.stream = stream
    return pkt


class TsSegmentWriter:
    """One MPEG-TS segment of H.264 access units (Annex B), written in memory.

    :meth:`add` each access unit in decode order, then :meth:`finish` once for the bytes
    (a multiple of 188; PAT, PMT first).

    Raises:
        MuxError: from ``add`` when the muxer rejects the access unit.
    """

    def __init__(self, codec: str = "h264") -> None:
        if codec not in TS_CODECS:
            raise MuxError(f"MPEG-TS segments carry {', '.join(TS_CODECS)} only, not {codec}")
        self._buf = _Sink()
        try:
            self._out = av.open(self._buf, "w", format="mpegts", options={"max_delay": "700000"})
            self._stream = self._out.add_mux_stream(_MUX_NAMES[codec])
            self._stream.time_base = TIME_BASE
        except av.FFmpegError as exc:
            raise MuxError(f"cannot start MPEG-TS muxer: {exc}") from None
        self.frames = 0

    def add(self, data: bytes, pts: int, dts: int, key: bool, duration: int) -> None:
        """Mux one access unit; ``pts``/``dts``/``duration`` in 90 kHz ticks."""
        try:
            self._out.mux(_packet(self._stream, data, pts, dts, key, duration))
        except (av.FFmpegError, ValueError) as exc:
            raise MuxError(f"MPEG-TS muxer rejected a frame: {exc}") from None
        self.frames += 1

    def finish(self) -> bytes:
        """Close the muxer and return the segment bytes."""
        try:
            self._out.close()
        except av.FFmpegError as exc:
            raise MuxError(f"MPEG-TS muxer failed to finish: {exc}") from None
        return self._buf.take()


class Fmp4Writer:
    """A fragmented-MP4 track: :attr:`init` plus one ``moof``+``mdat`` per frame.

    ``codec`` is ``h264``, ``h265`` or ``av1``; ``width``/``height`` in pixels (from StreamInfo
    or :func:`probe_dimensions`).  The first :meth:`add` must be a keyframe carrying the codec
    configuration in band (SPS/PPS(/VPS), or the AV1 sequence header).

    Raises:
        MuxError: on an unsupported codec, missing dimensions, or a frame the muxer rejects.
    """

    def __init__(self, codec: str, width: int, height: int) -> None:
        if codec not in FMP4_CODECS:
            raise MuxError(f"fMP4 tracks carry {', '.join(FMP4_CODECS)} only, not {codec}")
        if width <= 0 or height <= 0:
            raise MuxError("fMP4 needs the picture size")
        self._buf = _Sink()
        try:
            self._out = av.open(self._buf, "w", format="mp4", options={"movflags": FMP4_FLAGS, "use_editlist": "0"})
            self._stream = self._out.add_mux_stream(_MUX_NAMES[codec], width=width, height=height)
            self._stream.time_base = TIME_BASE
        except av.FFmpegError as exc:
            raise MuxError(f"cannot start fMP4 muxer: {exc}") from None
        self.init: bytes | None = None
        self._closed = False

    def add(self, data: bytes, pts: int, dts: int, key: bool, duration: int) -> bytes:
        """Mux one access unit; returns the fragment bytes completed by this call.

        That is the previous frame's ``moof``+``mdat`` (b"" after the first frame, whose call
        produces :attr:`init` instead).
        """
        try:
            self._out.mux(_packet(self._stream, data, pts, dts, key, duration))
        except (av.FFmpegError, ValueError) as exc:
            raise MuxError(f"fMP4 muxer rejected a frame: {exc}") from None
        if self.init is None:
            self.init = self._buf.take()
            if not self.init:
                raise MuxError("fMP4 muxer wrote no header (no codec configuration in the first keyframe?)")
            return b""
        return self._buf.take()

    def close(self) -> bytes:
        """Flush the last frame's fragment and close; returns those bytes (no ``mfra`` trailer)."""
        if self._closed:
            return b""
        self._closed = True
        try:
            self._out.close()
        except av.FFmpegError as exc:
            raise MuxError(f"fMP4 muxer failed to finish: {exc}") from None
        return self._buf.take()


def probe_dimensions(codec: str, data: bytes) -> tuple[int, int]:
    """Picture size of a keyframe, by decoding it once with PyAV (a few ms for 720p).

    Used only when StreamInfo carries no ``width``/``height``.  Returns (0, 0) when the keyframe
    does not decode.
    """
    name = _DECODERS.get(codec)
    if name is None:
        return 0, 0
    try:
        ctx = av.CodecContext.create(name, "r")
        if not isinstance(ctx, VideoCodecContext):
            return 0, 0
        frames = list(ctx.decode(av.Packet(data))) + list(ctx.decode(None))
    except (av.FFmpegError, ValueError):
        return 0, 0
    for frame in frames:
        return int(frame.width), int(frame.height)
    return 0, 0

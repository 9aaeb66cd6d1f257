"""Media playlist text: standard HLS (RFC 8216) and LL-HLS (RFC 8216bis), pure functions.

Standard (``stream.m3u8``): ``EXT-X-VERSION:3`` with MPEG-TS segments (H.264), or version 6 with
``EXT-X-MAP`` and fMP4 segments for codecs camhub does not put in MPEG-TS (H.265, AV1).

LL-HLS (``stream_ll.m3u8``, version 6, fMP4): ``EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,
PART-HOLD-BACK=<3 x part target>`` (RFC 8216bis 4.4.3.8: at least 2x, 3x recommended),
``EXT-X-PART-INF:PART-TARGET``, ``EXT-X-PART`` for the segments within three target durations of
the live edge (4.4.4.9: older ones SHOULD be removed) and for the open segment,
``INDEPENDENT=YES`` on parts that start with a keyframe, and ``EXT-X-PRELOAD-HINT:TYPE=PART`` for
the part being built.

Both: ``EXT-X-TARGETDURATION`` (RFC 8216 4.3.3.1: an integer no less than any rounded EXTINF;
the caller passes it rounded up), ``EXT-X-MEDIA-SEQUENCE`` (4.3.3.2), ``EXT-X-DISCONTINUITY-
SEQUENCE`` (4.3.3.3: the number of discontinuities before the first listed segment),
``EXT-X-DISCONTINUITY`` (4.3.2.3) and ``EXT-X-PROGRAM-DATE-TIME`` (4.3.2.6) on every segment.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from services.hls import names
from services.hls.window import CLOCK_HZ, Segment

MPEGURL = "application/vnd.apple.mpegurl"


def program_date_time(seconds: float) -> str:
    """ISO 8601 UTC with milliseconds, as ``EXT-X-PROGRAM-DATE-TIME`` wants it."""
    ms = round(seconds * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def _discontinuity_sequence(first: Segment) -> int:
    return first.dsn - (1 if first.discontinuity else 0)


def render_standard(segments: Sequence[Segment], target: int) -> str:
    """The standard playlist over ``segments`` (complete, oldest first, at least one).

    ``target``: EXT-X-TARGETDURATION, integer seconds.  A segment with MPEG-TS bytes is listed
    as ``.ts``, any other as fMP4 (``.m4s`` after its ``EXT-X-MAP``, and version 6).
    """
    if not segments:
        raise ValueError("a playlist needs at least one segment")
    any_fmp4 = any(s.ts is None for s in segments)
    first = segments[0]
    out = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{6 if any_fmp4 else 3}",
        f"#EXT-X-TARGETDURATION:{target}",
        f"#EXT-X-MEDIA-SEQUENCE:{first.msn}",
        f"#EXT-X-DISCONTINUITY-SEQUENCE:{_discontinuity_sequence(first)}",
    ]
    prev: Segment | None = None
    for seg in segments:
        fmp4 = seg.ts is None and seg.generation is not None
        if seg.discontinuity:
            out.append("#EXT-X-DISCONTINUITY")
        if fmp4 and seg.generation is not None and (prev is None or prev.generation != seg.generation):
            out.append(f'#EXT-X-MAP:URI="{names.init_mp4(seg.generation)}"')
        out.append(f"#EXT-X-PROGRAM-DATE-TIME:{program_date_time(seg.pdt)}")
        out.append(f"#EXTINF:{seg.seconds:.3f},")
        out.append(names.seg_m4s(seg.msn) if fmp4 else names.seg_ts(seg.msn))
        prev = seg if fmp4 else None
    return "\n".join(out) + "\n"


def render_ll(
    segments: Sequence[Segment],
    open_segment: Segment | None,
    target: int,
    part_target: float,
    hint: str | None,
) -> str:
    """The LL-HLS playlist: complete ``segments`` (at least one), then the open segment's parts.

    ``part_target`` in seconds; ``hint`` the URI of the part being built (preload hint) or None.
    """
    if not segments:
        raise ValueError("a playlist needs at least one segment")
    first = segments[0]
    out = [
        "#EXTM3U",
        "#EXT-X-VERSION:6",
        f"#EXT-X-TARGETDURATION:{target}",
        f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={3 * part_target:.3f}",
        f"#EXT-X-PART-INF:PART-TARGET={part_target:.5f}",
        f"#EXT-X-MEDIA-SEQUENCE:{first.msn}",
        f"#EXT-X-DISCONTINUITY-SEQUENCE:{_discontinuity_sequence(first)}",
    ]
    if open_segment is not None and not open_segment.parts:
        open_segment = None  # nothing to list yet; the hint names its first part
    listing = list(segments) + ([open_segment] if open_segment is not None else [])
    # Parts are listed for segments that end within three target durations of the live edge.
    horizon = 3 * target * CLOCK_HZ
    with_parts: set[int] = set()
    span = sum(p.duration for p in open_segment.parts) if open_segment is not None else 0
    for seg in reversed(segments):
        if span >= horizon:
            break
        with_parts.add(seg.msn)
        span += seg.duration
    prev: Segment | None = None
    for seg in listing:
        if seg.discontinuity:
            out.append("#EXT-X-DISCONTINUITY")
        if seg.generation is not None and (prev is None or prev.generation != seg.generation):
            out.append(f'#EXT-X-MAP:URI="{names.init_mp4(seg.generation)}"')
        out.append(f"#EXT-X-PROGRAM-DATE-TIME:{program_date_time(seg.pdt)}")
        if not seg.complete or seg.msn in with_parts:
            for p in seg.parts:
                attrs = f'DURATION={p.duration / CLOCK_HZ:.5f},URI="{names.part_m4s(seg.msn, p.index)}"'
                out.append(f"#EXT-X-PART:{attrs}{',INDEPENDENT=YES' if p.independent else ''}")
        if seg.complete:
            out.append(f"#EXTINF:{seg.seconds:.3f},")
            out.append(names.seg_m4s(seg.msn))
        prev = seg
    if hint is not None:
        out.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{hint}"')
    return "\n".join(out) + "\n"

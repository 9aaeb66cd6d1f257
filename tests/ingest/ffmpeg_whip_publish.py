"""Publish the Big Buck Bunny clip's H.264 to a WHIP URL with FFmpeg's WHIP muxer (PyAV wheel).

``python -m tests.ingest.ffmpeg_whip_publish URL [LOGLEVEL [WHIP_FLAGS]]`` - run as a child process so a hung
DTLS handshake can be killed.  No encoder: the clip's packets are remuxed (stream template).
Prints ``muxed <n>`` on success, ``failed <error>`` otherwise.
"""

from __future__ import annotations

import sys
import time

import av
import av.logging

from tests.support.media import BUNNY


def main(url: str, level: str = "", flags: str = "") -> int:
    if level:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(name)s %(message)s")
        av.logging.restore_default_callback()  # FFmpeg's own stderr logger, unfiltered
        av.logging.set_level(getattr(av.logging, level.upper()))
    inp = av.open(str(BUNNY))
    ist = inp.streams.video[0]
    try:
        out = av.open(
            url, "w", format="whip", options={"handshake_timeout": "8000", **({"whip_flags": flags} if flags else {})}
        )
        st = out.add_stream_from_template(ist)
        t0 = time.monotonic()
        n = 0
        for pkt in inp.demux(ist):
            if pkt.size == 0:
                continue
            pkt.stream = st
            out.mux(pkt)
            n += 1
            time.sleep(max(0.0, t0 + n / 25 - time.monotonic()))
        out.close()
    except Exception as exc:
        print(f"failed {type(exc).__name__}: {exc}", flush=True)
        return 1
    finally:
        inp.close()
    print(f"muxed {n}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

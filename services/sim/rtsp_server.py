"""A GStreamer RTSP server (gst-rtsp-server) for tests, benchmarks and demos.

Run it with the SYSTEM Python, which has ``gi`` (PyGObject) and the GStreamer introspection data
(Debian ``python3-gi``, ``gir1.2-gst-rtsp-server-1.0``); the camhub venv does not::

    /usr/bin/python3 services/sim/rtsp_server.py --port 8554 --mount /live \
        [--user u --password p] [--tls-cert cert.pem --tls-key key.pem] \
        [--codec h264|h265] [--file clip.mp4] [--width 640 --height 480 --fps 30 --bitrate 1000] \
        [--keyint 30] [--num-buffers N] [--shared]

Source: ``videotestsrc`` encoded by ``x264enc`` / ``x265enc`` (a live camera), or ``--file`` (an
MP4/MKV whose H.264/H.265 video is sent as is, paced in real time by its timestamps with
``identity sync=true``; no encoder runs).
``--user``/``--password`` require RTSP digest authentication (RFC 2617 via gst-rtsp-server's
``RTSPAuth``); ``--tls-cert``/``--tls-key`` serve RTSPS (RTSP over TLS, ``rtsps://``), as the
Bambu X1 does on port 322.  The server binds 127.0.0.1 only and prints ``READY <url>`` on stdout
once it listens.  RTP goes interleaved over the RTSP TCP connection when the client asks for TCP
(``rtsp_transport=tcp``); UDP is not offered (protocols limited to TCP).

``main(argv)`` is the entry point used by ``camhub sim rtsp-server``; from the camhub venv that
command re-executes this file with ``/usr/bin/python3``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

SYSTEM_PYTHON = "/usr/bin/python3"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="camhub sim rtsp-server", description="GStreamer RTSP(S) test server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8554)
    p.add_argument("--mount", default="/live", help="path of the stream, e.g. /streaming/live/1")
    p.add_argument("--user", default="", help="require digest auth with this user")
    p.add_argument("--password", default="")
    p.add_argument("--tls-cert", default="", help="PEM certificate: serve RTSPS")
    p.add_argument("--tls-key", default="", help="PEM private key for --tls-cert")
    p.add_argument("--codec", choices=("h264", "h265"), default="h264")
    p.add_argument("--file", default="", help="send the video of this MP4/MKV instead of videotestsrc")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--bitrate", type=int, default=1000, help="encoder bitrate, kbit/s")
    p.add_argument("--keyint", type=int, default=30, help="frames between keyframes")
    p.add_argument("--num-buffers", type=int, default=-1, help="end the stream (EOS) after N frames")
    p.add_argument("--pattern", default="ball", help="videotestsrc pattern")
    p.add_argument("--shared", action="store_true", help="one pipeline for every client")
    return p.parse_args(argv)


def launch_line(a: argparse.Namespace) -> str:
    """The gst-launch description of the media pipeline (payloader named ``pay0``)."""
    if a.file:
        demux = "matroskademux" if a.file.endswith((".mkv", ".webm")) else "qtdemux"
        parse = "h265parse" if a.codec == "h265" else "h264parse"
        pay = "rtph265pay" if a.codec == "h265" else "rtph264pay"
        return (
            f'( filesrc location="{a.file}" ! {demux} name=d d.video_0 ! queue ! {parse} config-interval=-1 '
            f"! identity sync=true ! {pay} name=pay0 pt=96 config-interval=-1 )"
        )
    src = (
        f"videotestsrc is-live=true pattern={a.pattern} num-buffers={a.num_buffers} "
        f"! video/x-raw,width={a.width},height={a.height},framerate={a.fps}/1,format=I420"
    )
    if a.codec == "h265":
        enc = (
            f"x265enc tune=zerolatency speed-preset=ultrafast bitrate={a.bitrate} key-int-max={a.keyint} "
            f"! video/x-h265,profile=main ! h265parse config-interval=-1 ! rtph265pay name=pay0 pt=96 "
            f"config-interval=-1"
        )
    else:
        enc = (
            f"x264enc tune=zerolatency speed-preset=ultrafast bitrate={a.bitrate} key-int-max={a.keyint} "
            f"! video/x-h264,profile=baseline ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 "
            f"config-interval=-1"
        )
    return f"( {src} ! {enc} )"


def _serve(a: argparse.Namespace) -> None:
    import gi  # type: ignore[import-not-found]

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtsp", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import Gio, GLib, Gst, GstRtsp, GstRtspServer  # type: ignore[import-not-found]

    Gst.init(None)
    server = GstRtspServer.RTSPServer.new()
    server.set_address(a.host)
    server.set_service(str(a.port))
    factory = GstRtspServer.RTSPMediaFactory.new()
    factory.set_launch(launch_line(a))
    factory.set_shared(bool(a.shared))
    factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    factory.set_eos_shutdown(True)

    auth: GstRtspServer.RTSPAuth | None = None
    if a.user or a.tls_cert:
        auth = GstRtspServer.RTSPAuth.new()
    if a.user:
        assert auth is not None
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        auth.add_digest(a.user, a.password, token)
        role = Gst.Structure.new_from_string(
            "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
        )
        factory.add_role_from_structure(role)
    elif auth is not None:
        # TLS without users: everybody may play
        anon = GstRtspServer.RTSPToken()
        anon.set_string("media.factory.role", "anonymous")
        auth.set_default_token(anon)
        role = Gst.Structure.new_from_string(
            "anonymous, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
        )
        factory.add_role_from_structure(role)
    if a.tls_cert:
        assert auth is not None
        cert = Gio.TlsCertificate.new_from_files(a.tls_cert, a.tls_key or a.tls_cert)
        auth.set_tls_certificate(cert)
    if auth is not None:
        server.set_auth(auth)

    server.get_mount_points().add_factory(a.mount, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on {a.host}:{a.port}", file=sys.stderr, flush=True)
        sys.exit(1)
    scheme = "rtsps" if a.tls_cert else "rtsp"
    print(f"READY {scheme}://{a.host}:{server.get_bound_port()}{a.mount}", flush=True)
    # SIGTERM/SIGINT keep their default action (end the process at once): a GLib handler runs
    # only when the main context is free, which it is not while a media pipeline shuts down.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    GLib.MainLoop().run()


def main(argv: list[str]) -> None:
    """``camhub sim rtsp-server ARGS``: serve until SIGTERM/SIGINT.

    From an interpreter without ``gi`` (the camhub venv) it re-executes this file with the system
    Python, which has it.
    """
    try:
        import gi  # noqa: F401
    except ImportError:
        if sys.executable == SYSTEM_PYTHON or not os.path.exists(SYSTEM_PYTHON):
            print("camhub sim rtsp-server needs GStreamer's Python bindings (python3-gi)", file=sys.stderr)
            sys.exit(2)
        sys.exit(subprocess.call([SYSTEM_PYTHON, os.path.abspath(__file__), *argv]))
    _serve(parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])

"""``camhub sim <simulator> [options]``: dispatch to a simulator module's ``main(argv)``.

The table maps each simulator name to its module; add a line to add a simulator.
"""

from __future__ import annotations

import importlib
import sys

SIMULATORS: dict[str, tuple[str, str]] = {
    "printer": ("services.sim.printer", "a Bambu Lab printer: TLS MQTT broker with a printer's behaviour"),
    "camera": ("services.sim.camera", "a synthetic H.264 camera pushing frames to the gateway"),
    "rtsp-server": ("services.sim.rtsp_server", "a GStreamer RTSP(S) server"),
    "bambu-camera": ("services.sim.bambu_camera", "a Bambu P1/A1 port-6000 JPEG camera"),
}


def usage() -> str:
    lines = ["usage: camhub sim <simulator> [options]", "", "simulators:"]
    lines += [f"  {name:<12} {about}" for name, (_, about) in SIMULATORS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if argv else 2)
    entry = SIMULATORS.get(argv[0])
    if entry is None:
        print(f"camhub sim: unknown simulator {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(entry[0])
    module.main(argv[1:])


if __name__ == "__main__":
    main()

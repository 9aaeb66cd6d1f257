"""Bambu Lab LAN protocol logic with no I/O: payload decoding, status merging, normalization, HMS
codes, command builders and acknowledgement matching, camera URL bootstrap.

Facts and payload shapes: ``/work/shared/research/bambu.md`` (ha-bambulab, OpenBambuAPI,
OrcaSlicer ``DeviceManager.cpp``).  Topics: reports on ``device/<serial>/report``, requests on
``device/<serial>/request`` (MQTT 3.1.1 over TLS, port 8883, user ``bblp``).
"""

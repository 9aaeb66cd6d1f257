"""camhub hls service: MPEG-TS segments and LL-HLS (fMP4 parts, blocking reload) over the bus.

Sans-IO core: :mod:`~services.hls.names` (resource names), :mod:`~services.hls.timeline`
(continuous output PTS/DTS), :mod:`~services.hls.segmenter` (where segments and parts begin),
:mod:`~services.hls.mux` (PyAV muxers in memory), :mod:`~services.hls.window` (kept segments),
:mod:`~services.hls.playlist` (m3u8 text), :mod:`~services.hls.blocking` (LL-HLS reload rules),
:mod:`~services.hls.packager` (all of it for one stream).
Async shell: :mod:`~services.hls.endpoint` (answers requests, waits), :mod:`~services.hls.runner`
(lease, subscriptions), :mod:`~services.hls.service` (stream discovery), :mod:`~services.hls.state`
(KV ``camhub-hls``), :mod:`~services.hls.mirror` (disk mirror), :mod:`~services.hls.viewers`.
Gateway side: :mod:`~services.hls.client` (``hls_get``) and :mod:`~services.hls.wire`.
"""

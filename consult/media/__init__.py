"""The media service (``telemed media``): an aiortc SFU that forwards encoded VP8 and Opus.

``server`` is the control API (contract C, ``docs/media.md``), ``sfu`` the rooms and peers,
``relay`` the fan-out, ``forward`` the hooks into aiortc, ``recorder`` the WebM recording,
``loopback`` the ICE host-address override, ``main`` the process entry point.
"""

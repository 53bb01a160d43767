#!/usr/bin/python3
"""An RTSP server on loopback for the pulled-camera tests: GStreamer's RTSP server (Debian
`gir1.2-gst-rtsp-server-1.0`, `gstreamer1.0-plugins-good`) streaming one real JPEG, looped,
as Motion-JPEG over RTP at `--fps`, at rtsp://127.0.0.1:PORT/MOUNT.

    /usr/bin/python3 tests/camera/rtsp_server.py --port 8554 --mount cam --jpeg dog.jpg

Prints `ready rtsp://127.0.0.1:PORT/MOUNT` once listening; runs until killed. Runs on the
system Python (its `gi` bindings are a Debian package, not in the project's venv).
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mount", default="cam")
    ap.add_argument("--jpeg", required=True)
    ap.add_argument("--fps", type=int, default=4)
    a = ap.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(a.port))
    factory = GstRtspServer.RTSPMediaFactory()
    location = a.jpeg.replace("\\", "\\\\").replace('"', '\\"')
    factory.set_launch(
        f'( multifilesrc location="{location}" loop=true '
        f"caps=image/jpeg,framerate={a.fps}/1 ! jpegdec ! videoconvert ! "
        "video/x-raw,format=I420 ! jpegenc quality=85 ! rtpjpegpay name=pay0 pt=26 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory(f"/{a.mount}", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{a.port}", file=sys.stderr)
        return 1
    print(f"ready rtsp://127.0.0.1:{a.port}/{a.mount}", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`mnist-edge serve`: a camera's annotated stream, its digits and a photo upload in a browser."""

from __future__ import annotations

import ipaddress
import socket
import sys
from pathlib import Path

import click

from mnist_edge.runtime.broadcast import CaptureHub
from mnist_edge.runtime.camera import CameraError, open_source
from mnist_edge.runtime.cli_common import load_classifier, model_options
from mnist_edge.runtime.images import MAX_PIXELS
from mnist_edge.runtime.live import signals_held, stop_signals_as_ctrl_c
from mnist_edge.runtime.serve import MAX_CLIENTS, DigitServer, UploadReader

TOKEN_ENV = "MNIST_EDGE_TOKEN"


@click.command()
@click.option(
    "--source",
    default="0",
    show_default=True,
    help="Camera index (0), a video file (played at its frame rate, looped), a stream URL or "
    "'picamera2'.",
)
@model_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on; "
              "0.0.0.0 for every network (then set --token).")  # fmt: skip
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--token",
    envvar=TOKEN_ENV,
    default=None,
    help=f"Every request must carry it (?token= or Authorization: Bearer). Also ${TOKEN_ENV}.",
)
@click.option(
    "--max-fps",
    type=click.FloatRange(min=0.1),
    default=15.0,
    show_default=True,
    help="At most this many stream frames a second (JPEG encoding).",
)
@click.option("--jpeg-quality", type=click.IntRange(10, 100), default=80, show_default=True)
@click.option(
    "--max-upload-mb",
    type=click.FloatRange(min=0.01),
    default=10.0,
    show_default=True,
    help="Larger uploads get 413 before they are read.",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=MAX_PIXELS,
    show_default=True,
    help="Uploads with more pixels get 400 before they are decoded.",
)
@click.option(
    "--max-clients",
    type=click.IntRange(min=1),
    default=MAX_CLIENTS,
    show_default=True,
    help="Connections at once (viewers, event streams, API calls); more get 503.",
)
@click.option("--always-on", is_flag=True, help="Keep the camera running with nobody watching.")
@click.option(
    "--release-after",
    type=click.FloatRange(min=0.0),
    default=5.0,
    show_default=True,
    help="Seconds the camera stays open after the last viewer left.",
)
@stop_signals_as_ctrl_c  # systemd's SIGTERM and a closed terminal's SIGHUP end it like Ctrl+C
def serve(
    source: str,
    model: Path | None,
    threads: int | None,
    min_confidence: float,
    drop_weak: bool,
    verbose: bool,
    host: str,
    port: int,
    token: str | None,
    max_fps: float,
    jpeg_quality: int,
    max_upload_mb: float,
    max_pixels: int,
    max_clients: int,
    always_on: bool,
    release_after: float,
) -> None:
    """Serve the camera's annotated stream and its digits to a browser (a headless Pi).

    \b
    GET  /             the page: live stream, the number, confidences, a photo upload
    GET  /stream.mjpg  annotated frames (MJPEG), at most --max-fps
    GET  /api/latest   the latest frame's result (JSON)
    GET  /api/events   Server-Sent Events, one result per processed frame
    POST /api/predict  an image (body or form field 'image'): predict's JSON record
    GET  /healthz      uptime, frames processed, the source's state

    The camera runs only while someone watches the stream or the events (--always-on: all
    the time); one capture loop feeds every client. Ctrl+C, SIGTERM or SIGHUP stops cleanly.
    """
    if token is not None and (not token or any(c.isspace() for c in token)):
        raise click.BadParameter("must be non-empty, without spaces", param_hint="--token")
    classifier = load_classifier(model, threads, verbose)
    try:
        open_source(source).close()  # a source that cannot be opened is an error now
    except CameraError as error:
        raise click.ClickException(str(error)) from None
    hub = CaptureHub(
        lambda: open_source(source),
        classifier,
        name=source,
        min_confidence=min_confidence,
        drop_weak=drop_weak,
        max_fps=max_fps,
        jpeg_quality=jpeg_quality,
        always_on=always_on,
        release_after=release_after,
    )
    uploads = UploadReader(classifier.path, threads, min_confidence, drop_weak, max_pixels)
    try:
        server = DigitServer(
            host, port, hub, uploads, token=token, max_clients=max_clients,
            max_upload_bytes=round(max_upload_mb * 2**20), verbose=verbose,
        )  # fmt: skip
    except OSError as error:
        reason = error.strerror or str(error)
        raise click.ClickException(f"cannot listen on {host}:{port} ({reason})") from None

    bound_port = server.server_address[1]
    click.echo(f"mnist-edge serve: {classifier.name} on {source}; Ctrl+C stops")
    for url in urls_to_open(host, bound_port):
        click.echo(f"  open {url}" + ("?token=..." if token else ""))
    if not token and not is_loopback(host):
        click.echo(
            f"warning: no --token: anyone who reaches this machine on port {bound_port} can "
            f"watch the camera; set --token or ${TOKEN_ENV}",
            err=True,
        )
    sys.stdout.flush()  # the URLs show at once in a pipe or the journal too
    if always_on:
        hub.start()
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        with signals_held():  # a second Ctrl+C must not leave the camera open
            hub.close()  # the camera first: it is what another program may be waiting for
            server.close_connections()
            server.server_close()
        click.echo(f"stopped after {hub.frames} frames", err=True)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: assume others can reach it


def urls_to_open(host: str, port: int) -> list[str]:
    """The URLs a person types: this machine's addresses when listening on all of them."""
    if host not in ("0.0.0.0", "::", ""):
        shown = f"[{host}]" if ":" in host else host
        return [f"http://{shown}:{port}/"]
    addresses = []
    try:  # the address the default route leaves from (a UDP connect sends nothing)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))
            addresses.append(probe.getsockname()[0])
    except OSError:
        pass
    try:
        addresses += socket.gethostbyname_ex(socket.gethostname())[2]
    except OSError:
        pass
    found = [a for a in dict.fromkeys(addresses) if not ipaddress.ip_address(a).is_loopback]
    names = [f"http://{a}:{port}/" for a in found]
    names.append(f"http://{socket.gethostname()}.local:{port}/")  # mDNS, as on Raspberry Pi OS
    return names

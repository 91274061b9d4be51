"""Uploaded images for `mnist-edge serve`: read like `predict` reads a file, one at a time.

The bytes go through `decode_image`, the same reading as `read_image` (the pixel limit from the
header before anything is decoded), and the answer is the record `predict --json` prints for a
file, its `path` the upload's file name.
"""

from __future__ import annotations

import threading
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path

from mnist_edge.runtime.classifier import DigitClassifier
from mnist_edge.runtime.digits import recognize
from mnist_edge.runtime.images import MAX_PIXELS, ImageReadError, decode_image


class UploadReader:
    """`predict` for uploaded bytes: its own interpreter (the loop's is busy), one at a time."""

    def __init__(
        self,
        model: Path,
        threads: int | None,
        min_confidence: float,
        drop_weak: bool,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        self.classifier = DigitClassifier(model, threads=threads)
        self.min_confidence = min_confidence
        self.drop_weak = drop_weak
        self.max_pixels = max_pixels
        self._lock = threading.Lock()

    def read(self, name: str, data: bytes) -> tuple[int, dict]:
        """(HTTP status, the record `predict --json` prints for a file of that name)."""
        if not data:
            return 400, {"path": name, "error": "the upload is empty"}
        try:
            image = decode_image(data, name, self.max_pixels)
        except ImageReadError as error:
            return 400, {"path": name, "error": error.reason}
        with self._lock:
            result = recognize(
                image, self.classifier, min_confidence=self.min_confidence, drop_weak=self.drop_weak
            )
        return 200, {"path": name, **result.to_json()}


def image_from_multipart(content_type: str, body: bytes) -> tuple[str, bytes] | None:
    """The file name and bytes of form field `image`, or None if the form has no such field."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        return None
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "image":
            return Path(part.get_filename() or "upload").name, part.get_payload(decode=True) or b""
    return None

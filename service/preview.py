"""Previews: an upload as the service reads it, as a JPEG that every browser shows.

The service reads HEIC (every iPhone photo), AVIF and TIFF, which most
browsers cannot show: the web page would draw the faces it found on a blank.
A preview is the same picture decoded the way the service decodes it (upright
by its EXIF orientation, transparency on white, 16-bit grey scaled), made no
larger than a page needs, and saved as JPEG. Its proportions are the upload's,
so a face box from ``/v1/classify`` (in the upload's pixels) lands on it when
scaled by ``preview width / upload width``.

A preview decodes as much as a classify request does, so it is admitted the
same way: charged to the pixel budget from its header alone (413 or 429
before anything is decoded), decoded on one of the decode threads, and bound
by the request deadline.
"""

from __future__ import annotations

import asyncio
import io

import anyio
from PIL import Image

from .batching import Deadline
from .budget import PixelBudget, PixelNeed
from .errors import DeadlineExceeded
from .images import Upload, decode_image, probe

#: The longest side of a preview unless the request asks otherwise: a photo card on the page is at most 24 rem wide,
#: and a 2x screen shows about 800 pixels of it.
DEFAULT_SIDE = 1024
#: Sides a request may ask for: a preview is a small picture, never a way to transcode full-size photos.
MIN_SIDE, MAX_SIDE = 16, 2048
#: JPEG quality of a preview: meant to be looked at, not kept.
QUALITY = 85


def preview_jpeg(upload: Upload, max_side: int, max_pixels: int) -> bytes:
    """Decode ``upload`` as the service does, at most ``max_side`` pixels a side, and save it as JPEG."""
    picture = decode_image(upload, max_pixels=max_pixels, max_side=max_side).image
    picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=QUALITY)
    return buffer.getvalue()


class Previewer:
    """Makes previews within the service's limits: the pixel budget, the decode threads, the request deadline."""

    def __init__(self, max_pixels: int, budget: PixelBudget, decoders: anyio.CapacityLimiter) -> None:
        self.max_pixels = max_pixels
        self.budget = budget
        self.decoders = decoders

    async def handle(self, upload: Upload, max_side: int, deadline: Deadline) -> bytes:
        """The preview's JPEG bytes; 400/413/415 for a bad upload, 429 when the budget is full, 504 past the deadline."""
        decoded = probe(upload, max_pixels=self.max_pixels, max_side=max_side).decoded_pixels
        with self.budget.lease(PixelNeed(total=decoded, peak=decoded), label="preview request"):
            try:
                async with asyncio.timeout(max(0.0, deadline.remaining())):
                    return await anyio.to_thread.run_sync(
                        preview_jpeg, upload, max_side, self.max_pixels, limiter=self.decoders
                    )
            except TimeoutError:
                raise DeadlineExceeded("request exceeded its deadline waiting for a decode thread") from None

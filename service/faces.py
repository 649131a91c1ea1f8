"""Finding faces in photos (YuNet, through the ``yuface`` package) and cutting them out for the model.

The detector's weights are compiled into the ``yuface`` wheel, so the service
needs no download at start-up and works offline. Crops are made by
:meth:`model_core.Preprocess.crop_face`, the same framing the model was
trained with; this module never resizes or normalises a face itself.

YuNet is a C extension that holds the CPU for tens of milliseconds per photo:
callers run :meth:`FaceDetector.detect` in a worker thread, never on the
event loop. It works best on pictures up to 960 pixels (and warns above), so
larger photos are detected on a downscaled copy and the boxes scaled back.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np
import yuface
from PIL import Image

from model_core import Preprocess

log = logging.getLogger(__name__)

#: Longest side YuNet sees; larger photos are downscaled for detection only.
DETECT_MAX_SIDE = 960


@dataclass(frozen=True)
class Face:
    """One face: its box (x, y, width, height) in the pixels of the decoded photo, and YuNet's score.

    ``score`` is None when detection was skipped and the whole image is the face.
    """

    box: tuple[int, int, int, int]
    score: float | None

    @property
    def area(self) -> int:
        return self.box[2] * self.box[3]


def whole_image(image: Image.Image) -> Face:
    """The 'face' of an image that already is a face crop (detection skipped)."""
    return Face(box=(0, 0, image.width, image.height), score=None)


class FaceDetector:
    """YuNet with a confidence threshold, returning the largest faces first."""

    def __init__(self, confidence: float = 0.5, max_faces: int = 16) -> None:
        self.confidence = confidence
        self.max_faces = max_faces
        self._first_call = threading.Lock()
        self._warm = False

    def warm_up(self) -> None:
        """Run once on a blank picture: the first call initialises the network's parameters.

        That initialisation is not guarded inside the C library, so it must not
        happen in two threads at once; :meth:`detect` also serialises calls
        until one has completed.
        """
        self.detect(Image.new("RGB", (160, 120), (128, 128, 128)))

    def detect(self, image: Image.Image) -> list[Face]:
        """Faces in an RGB image, largest first, at most ``max_faces``."""
        scale = min(1.0, DETECT_MAX_SIDE / max(image.size))
        small = image
        if scale < 1.0:
            small = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.BILINEAR)
        bgr = np.ascontiguousarray(np.asarray(small.convert("RGB"))[:, :, ::-1])
        if self._warm:
            confs, boxes, _ = yuface.detect(bgr, conf=self.confidence)
        else:
            with self._first_call:
                confs, boxes, _ = yuface.detect(bgr, conf=self.confidence)
                self._warm = True
        faces = []
        for conf, box in zip(confs.tolist(), boxes.astype(np.int64).tolist(), strict=True):
            x, y, w, h = (v / scale for v in box)
            if w <= 0 or h <= 0:
                continue
            faces.append(Face(box=(round(x), round(y), round(w), round(h)), score=min(1.0, conf / 100.0)))
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces[: self.max_faces]


def crop_faces(image: Image.Image, faces: list[Face], preprocess: Preprocess) -> list[Image.Image]:
    """Each face cut out of ``image`` and framed as the model was trained (``Preprocess.crop_face``).

    A skipped detection (score None, box = the whole image) passes the image
    through unchanged, so a ready-made crop is not re-framed.
    """
    crops = []
    for face in faces:
        if face.score is None and face.box == (0, 0, image.width, image.height):
            crops.append(image)
        else:
            crops.append(preprocess.crop_face(image, face.box))
    return crops

"""Finding faces in photos (YuNet, through the ``yuface`` package) and cutting them out for the model.

One module for the service and the command line: the service finds the faces
of every uploaded photo here, and ``fersnet evaluate --detect`` finds the face
of every dataset image the same way, so a folder of photos is measured as the
service would answer for it. The detector's weights are compiled into the
``yuface`` wheel, so nothing is downloaded and it works offline. Crops are made
by :meth:`model_core.Preprocess.crop_face`, the same framing the model was
trained with; this module never resizes or normalises a face itself.

YuNet is a C extension that holds the CPU for tens of milliseconds per photo:
callers run :meth:`FaceDetector.detect` in a worker thread, never on the
event loop. It works best on pictures up to 960 pixels (and warns above), so
larger photos are detected on a downscaled copy and the boxes scaled back.
It misses many faces in small pictures (a fifth of FER2013's 48-pixel test
crops), and finds almost all of them enlarged, so pictures under 192 pixels
are detected on an enlarged copy (``python -m bench.photos`` measures both).

``yuface`` publishes wheels for CPython 3.11 alone (the image runs 3.11). On
any other Python the package installs without it, and everything but finding
faces works: a :class:`FaceDetector` made without it raises
:class:`DetectorUnavailable`, whose message tells the user to send face crops
instead.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .preprocess import Preprocess

if TYPE_CHECKING:
    from .data.records import Records

log = logging.getLogger(__name__)

#: Longest side YuNet sees; larger photos are downscaled for detection only.
DETECT_MAX_SIDE = 960
#: Shortest longest side YuNet sees; smaller pictures (face crops) are enlarged for detection only.
#: On FER2013's PrivateTest crops (every fourth) it finds a face in 80.5 % at 48 pixels, 97.3 % at 96, 98.2 % at 192.
DETECT_MIN_SIDE = 192
#: A picture this many times the model's input across or more is taken for a photo (find its face), a smaller one for
#: a face crop (classify it whole). The datasets' crops are the input's size (48 pixels); photos and loosely framed
#: faces (JAFFE's 256, KDEF's 562) are larger. Detection on crops changes little either way (the default: FER2013
#: PrivateTest +0.20, CK+48 +0.82 points; docs/results.md, "Faces inside photos").
PHOTO_SIDE_FACTOR = 2


class DetectorUnavailable(RuntimeError):
    """Faces were to be found, but YuNet (the ``yuface`` package) is not installed in this Python."""

    def __init__(self) -> None:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        #: Why, in a clause: for messages that give their own advice (the service's).
        self.reason = ("the yuface package is not installed (pip install yuface)" if version == "3.11" else
                       f"the yuface package is not installed: it has wheels for Python 3.11 only, and this is Python {version}")
        super().__init__(
            f"face detection needs YuNet, but {self.reason}; send ready-made face crops (--detect no), "
            "or use Python 3.11 or the Docker image"
        )


def _yunet() -> ModuleType:
    try:
        import yuface
    except ImportError:
        raise DetectorUnavailable() from None
    return yuface


@dataclass(frozen=True)
class Face:
    """One face: its box (x, y, width, height) in the pixels of the decoded photo, YuNet's score, and its tilt.

    ``score`` is None when detection was skipped and the whole image is the face. ``angle`` is the slope of
    the line through the eyes (YuNet's landmarks) in degrees, counter-clockwise as PIL turns pictures: turning
    the photo by it about the box's centre sets the face upright (:func:`crop_faces`).
    """

    box: tuple[int, int, int, int]
    score: float | None
    angle: float = 0.0

    @property
    def area(self) -> int:
        return self.box[2] * self.box[3]


def eye_angle(landmarks: np.ndarray) -> float:
    """The slope of the line from the first eye to the second in YuNet's five landmarks (x, y, x, y, ...), in
    degrees counter-clockwise as PIL turns pictures (image rows run down, so a rising line is negative)."""
    (x0, y0), (x1, y1) = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)[:2]
    return math.degrees(math.atan2(y1 - y0, x1 - x0))


def whole_image(image: Image.Image) -> Face:
    """The 'face' of an image that already is a face crop (detection skipped)."""
    return Face(box=(0, 0, image.width, image.height), score=None)


class FaceDetector:
    """YuNet with a confidence threshold, returning the largest faces first."""

    def __init__(self, confidence: float = 0.5, max_faces: int = 16) -> None:
        """Raises :class:`DetectorUnavailable` where ``yuface`` is not installed."""
        self._yunet = _yunet()
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
        """Faces in a grey or RGB image, largest first, at most ``max_faces`` (YuNet is given the RGB of the picture it
        sees, converted after any resizing, so a full-size copy is never made)."""
        longest = max(image.size)
        scale = min(1.0, DETECT_MAX_SIDE / longest) if longest > DETECT_MIN_SIDE else DETECT_MIN_SIDE / longest
        seen = image
        if scale != 1.0:
            resample = Image.Resampling.BILINEAR if scale < 1.0 else Image.Resampling.BICUBIC
            seen = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), resample)
        bgr = np.ascontiguousarray(np.asarray(seen.convert("RGB"))[:, :, ::-1])
        if self._warm:
            confs, boxes, landmarks = self._yunet.detect(bgr, conf=self.confidence)
        else:
            with self._first_call:
                confs, boxes, landmarks = self._yunet.detect(bgr, conf=self.confidence)
                self._warm = True
        faces = []
        for conf, box, marks in zip(confs.tolist(), boxes.astype(np.int64).tolist(), landmarks.astype(np.float64), strict=True):
            x, y, w, h = (v / scale for v in box)
            if w <= 0 or h <= 0:
                continue
            faces.append(Face(box=(round(x), round(y), round(w), round(h)), score=min(1.0, conf / 100.0), angle=eye_angle(marks)))
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces[: self.max_faces]


def crop_faces(image: Image.Image, faces: list[Face], preprocess: Preprocess) -> list[Image.Image]:
    """Each face cut out of ``image``, turned upright and framed as the model was trained (``Preprocess.crop_face``).

    A tilted face is turned by its :attr:`Face.angle` first: the training faces are mostly upright, and on
    FER+ validation photos turned by up to 30 degrees this took the served answer from 75.70 to 79.80 %
    (docs/results.md, "Photos taken differently"). A redraw is turned back onto the photo
    (:func:`model_core.photo_edit.face_turn`). A skipped detection (score None, box = the whole image)
    passes the image through unchanged, so a ready-made crop is not re-framed.
    """
    crops = []
    for face in faces:
        if face.score is None and face.box == (0, 0, image.width, image.height):
            crops.append(image)
        else:
            crops.append(preprocess.crop_face(image, face.box, face.angle))
    return crops


class LargestFace:
    """A dataset image -> the crop the service would classify for it: its largest face, framed as in training.

    ``fersnet evaluate --detect`` decodes every image through this, so a folder
    of photos (rather than ready-made crops) is measured the way the service
    answers for them. Returns None where no face is found; the caller decides
    what to do with such an image (the evaluation classifies it whole and
    counts it).
    """

    def __init__(self, preprocess: Preprocess, detector: FaceDetector | None = None) -> None:
        self.preprocess = preprocess
        self.detector = detector or FaceDetector()

    def find(self, image: Image.Image) -> Face | None:
        """The largest face in ``image``, or None."""
        faces = self.detector.detect(image)
        return faces[0] if faces else None

    def __call__(self, image: Image.Image) -> Image.Image | None:
        face = self.find(image)
        return None if face is None else crop_faces(image, [face], self.preprocess)[0]


def face_finder(detect: bool, preprocess: Preprocess) -> LargestFace | None:
    """With ``detect``, each image's largest face framed for a model of ``preprocess`` as the service frames it."""
    return LargestFace(preprocess) if detect else None


# --------------------------------------------------------------------------- photo or face crop


def photo_sized(side: int, img_size: int) -> bool:
    """Whether a picture ``side`` pixels across is large enough, for a model of ``img_size``, to be a photo."""
    return side >= PHOTO_SIDE_FACTOR * img_size


def faces_or_crop(detector: FaceDetector, image: Image.Image, img_size: int) -> list[Face]:
    """The faces the detector finds in ``image``; where it finds none in a picture too small to be a photo
    (:func:`photo_sized`), the whole picture, as the face crop it is (score None).

    YuNet misses some of the tightest crops, faces that fill the picture to its edges: 53 of FER2013 PublicTest's
    3,589 48-pixel faces. A picture that small sent to find faces in is a face crop, and answering it whole is what
    its sender wants; a photo without a face (a wall, a landscape) is large, and keeps its answer of no face.
    """
    faces = detector.detect(image)
    if faces or photo_sized(max(image.size), img_size):
        return faces
    return [whole_image(image)]


def typical_side(records: Records, sample: int = 20) -> int:
    """The median longest side of a few of a split's images, read from their headers (0 for pixel arrays).

    Only headers are read, so deciding costs milliseconds even for a large split. Images that
    cannot be opened are left to the evaluation, which names them.
    """
    sides = []
    for record in records.records[:: max(1, len(records.records) // sample)][:sample]:
        if record.pixels is not None:
            return 0
        try:
            with Image.open(record.source) as f:
                sides.append(max(f.size))
        except OSError:
            continue
    return sorted(sides)[len(sides) // 2] if sides else 0


@dataclass(frozen=True)
class Detection:
    """Whether to find the face in each image of a split, and what that rests on."""

    detect: bool
    side: int | None
    """The split's typical longest side in pixels (None where the mode made reading it pointless)."""
    photos: bool
    """The images are photo-sized (:func:`photo_sized`): measured whole, most of each would be background."""


def decide_detection(mode: str, records: Records, img_size: int) -> Detection:
    """Whether to find the face in each image of a split: ``mode`` 'yes', 'no', or 'auto' (yes for photo-sized images).

    The datasets here are face crops of the model's input size, and their
    published numbers are measured on the crops as they are. A folder of photos
    (or of loosely framed faces) classified whole is mostly background, and its
    score says little about the model, so 'auto' measures such a folder as the
    service would answer for it. ``photos`` is reported under 'no' as well, so a
    caller can say that detection may have been wanted.
    """
    if mode == "yes":
        return Detection(detect=True, side=None, photos=False)
    if mode not in ("auto", "no"):
        raise ValueError(f"detection mode must be 'auto', 'yes' or 'no', not {mode!r}")
    side = typical_side(records)
    photos = photo_sized(side, img_size)
    return Detection(detect=photos and mode == "auto", side=side, photos=photos)

"""The two batched endpoints, written as the five hooks of :class:`service.batching.BatchedAPI`.

classify
    reserve: every upload's header -> its decoded pixels, charged to the pixel
    budget; decode: one upload at a time -> photo -> faces (YuNet, or the whole
    image) -> one normalised crop per face, the photo's pixels dropped before
    the next upload is decoded; batch/predict/unbatch: stacked crops ->
    probabilities; encode: the faces of each image with their boxes and
    probabilities under the request's class prior (never a NaN: a non-finite output is a 500).
synthesize
    decode: the upload -> photo -> the chosen face -> one item, the face with
    every target expression; batch/predict/unbatch: each face encoded once,
    decoded once per target; encode: the network's change put back into the
    photo at its own size and colours (:mod:`model_core.photo_edit`), as one
    picture, base64 pictures in JSON, a labelled grid of the face, or the bare
    model-sized face.

Only :class:`model_core.Preprocess` turns pictures into tensors and back.
"""

from __future__ import annotations

import base64
import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from fastapi.responses import JSONResponse, Response
from PIL import Image
from torch import Tensor

from model_core import Preprocess
from model_core.expressions import one_hot
from model_core.faces import Face, FaceDetector, crop_faces, faces_or_crop, whole_image
from model_core.image_formats import is_lossy
from model_core.photo_edit import crop_box, encode_like, face_tile, face_turn, redrawn_photos, scale_box
from model_core.prior import PriorName

from .batching import BatchedAPI, Decoded
from .budget import PixelBudget, PixelNeed
from .encoding import labelled_grid, png_bytes
from .engine import Engine
from .errors import DetectionUnavailable, InferenceFailed, InvalidParameter, NoFaceFound
from .images import Frame, Photo, Upload, decode_image, probe
from .metrics import ServiceMetrics
from .schemas import (
    Box,
    ClassifyResponse,
    FaceExpression,
    ImageExpressions,
    SynthesizedFace,
    SynthesizeResponse,
    UsedFace,
)

log = logging.getLogger(__name__)

OutputFormat = Literal["photo", "face", "json", "grid"]


def _box(photo: Photo | Frame, face: Face) -> Box:
    x, y, w, h = photo.to_original(face.box)
    return Box(x=x, y=y, width=w, height=h)


# --------------------------------------------------------------------------- classify


@dataclass(frozen=True)
class ClassifyRequest:
    uploads: list[Upload]
    detect: bool = True
    prior: PriorName = "natural"  # the class prior the answer assumes (model_core.prior); the route fills in the card's


@dataclass(frozen=True)
class FaceCrop:
    """One face to classify: where it came from, and its prepared pixels (C x H x W uint8, normalised per batch)."""

    image_index: int
    face: Face
    pixels: Tensor


def _prepared_uint8(preprocess: Preprocess, crop: Image.Image) -> Tensor:
    """A crop in the model's mode and size, as a C x H x W uint8 tensor.

    :meth:`ClassifyAPI.batch` normalises a whole batch in one operation, with
    ``Preprocess.to_tensor``'s formula (so the values are the same): four
    small tensor operations per face cost more than the face's share of one.
    """
    array = np.array(preprocess.prepare(crop))  # a writable copy: torch refuses PIL's read-only buffer
    return torch.from_numpy(array if array.ndim == 3 else array[:, :, None]).permute(2, 0, 1)


@dataclass(frozen=True)
class ClassifyContext:
    request: ClassifyRequest
    #: Each image's geometry (sizes, for boxes): the pixels themselves are gone once the faces are cut out.
    photos: list[Frame]


class _PhotoPipeline:
    """What both endpoints need to turn uploads into face crops, to count them, and to charge their pixels."""

    #: Whether the decoded photo stays in memory until the answer is encoded (charged to the budget until then).
    keeps_photo = False
    #: The endpoint's name (declared only: BatchedAPI, the other base of each endpoint, sets it).
    name: str

    def __init__(
        self,
        engine: Engine,
        detector: FaceDetector | None,
        metrics: ServiceMetrics,
        max_pixels: int,
        budget: PixelBudget | None = None,
        no_detector: str = "",
    ) -> None:
        """``detector`` None: this installation cannot find faces (``no_detector`` says why), and a request that
        asks for detection is refused before its image is read."""
        self.engine = engine
        self.detector = detector
        self.metrics = metrics
        self.max_pixels = max_pixels
        self.budget = budget
        self.no_detector = no_detector

    def require_detector(self, request: ClassifyRequest | SynthesizeRequest) -> FaceDetector | None:
        """The detector a request needs (None: it sends face crops); 501 for one that needs faces found where no
        detector is installed. ``reserve`` asks first, so such a request is refused before its image is read."""
        if not request.detect:
            return None
        if self.detector is None:
            raise DetectionUnavailable(f"this server cannot find faces in photos ({self.no_detector}): send a ready-made face crop with detect=false")
        return self.detector

    def faces_in(self, photo: Photo, request: ClassifyRequest | SynthesizeRequest) -> list[Face]:
        """The faces of a decoded upload: found by the detector (a small picture where it finds none is read whole,
        :func:`~model_core.faces.faces_or_crop`), or the whole image for a face crop (``detect=false``)."""
        detector = self.require_detector(request)
        if detector is None:
            return [whole_image(photo.image)]
        return faces_or_crop(detector, photo.image, self.engine.preprocess.img_size)

    def uploads(self, request: ClassifyRequest | SynthesizeRequest) -> list[Upload]:
        return request.uploads if isinstance(request, ClassifyRequest) else [request.upload]

    def reserve(self, request: ClassifyRequest | SynthesizeRequest) -> AbstractContextManager[object]:
        """Charge the request's decoded pixels from the headers alone (400/413/415 for a bad one, 429 when full)."""
        self.require_detector(request)
        if self.budget is None:
            return nullcontext()
        probes = [probe(upload, max_pixels=self.max_pixels) for upload in self.uploads(request)]
        decoded = [p.decoded_pixels for p in probes]
        kept = sum(p.kept_pixels for p in probes) if self.keeps_photo else 0
        need = PixelNeed(total=sum(decoded), peak=max(decoded, default=0) + kept)
        return self.budget.lease(need, label=f"{type(self).name} request")


#: Most decoded pixels (all images together) a request without detection may have to be decoded on the event loop:
#: 16 FER2013 crops (48x48) are 36,864, decoded in well under a millisecond; a thread hop costs about as much.
INLINE_DECODE_PIXELS = 65_536


class ClassifyAPI(_PhotoPipeline, BatchedAPI[ClassifyRequest, ClassifyContext, FaceCrop, Tensor, ClassifyResponse]):
    name = "classify"
    encode_inline = True  # a few pydantic objects: cheaper than the thread hop, and never stuck behind decodes

    def decode_inline(self, request: ClassifyRequest) -> bool:
        """Ready-made crops of a few thousand pixels: decoding them costs less than handing them to a thread."""
        if request.detect:
            return False
        pixels = 0
        for upload in request.uploads:
            pixels += probe(upload, max_pixels=self.max_pixels).decoded_pixels
            if pixels > INLINE_DECODE_PIXELS:
                return False
        return True

    def decode(self, request: ClassifyRequest) -> Decoded[ClassifyContext, FaceCrop]:
        """One upload at a time: decode, find faces, cut them out, drop the photo (so a request holds one at once)."""
        preprocess = self.engine.preprocess
        frames: list[Frame] = []
        items: list[FaceCrop] = []
        for index, upload in enumerate(request.uploads):
            photo = decode_image(upload, max_pixels=self.max_pixels)
            faces = self.faces_in(photo, request)
            if request.detect:
                self.metrics.faces.labels(self.name).inc(len(faces))
            for face, crop in zip(faces, crop_faces(photo.image, faces, preprocess), strict=True):
                items.append(FaceCrop(index, face, _prepared_uint8(preprocess, crop)))
            frames.append(photo.frame)
            del photo
        return Decoded(ClassifyContext(request, frames), items)

    def batch(self, items: Sequence[FaceCrop]) -> Tensor:
        p = self.engine.preprocess
        return (torch.stack([item.pixels for item in items]).float() / 255.0 - p.mean) / p.std  # as Preprocess.to_tensor

    def predict(self, batch: Tensor) -> Tensor:
        return self.engine.classify(batch)

    def unbatch(self, output: Tensor, count: int) -> list[Tensor]:
        return list(output[:count].unbind(0))

    def encode(self, decoded: Decoded[ClassifyContext, FaceCrop], outputs: Sequence[Tensor]) -> ClassifyResponse:
        """The faces of each image with their probabilities, moved from the training data's prior to the request's."""
        classes = self.engine.classes
        request, photos = decoded.context.request, decoded.context.photos
        per_image: list[list[FaceExpression]] = [[] for _ in photos]
        answered: Tensor | list[Tensor] = self.engine.loaded.reweigh(torch.stack(list(outputs)), request.prior) if outputs else []
        for item, probabilities in zip(decoded.items, answered, strict=True):
            values = probabilities.tolist()
            if not all(math.isfinite(v) for v in values):  # a probability is a number, never null
                log.error("classify: the model answered non-finite probabilities %s", values)
                raise InferenceFailed("the model produced a non-finite probability; the service logged the details")
            top = max(range(len(values)), key=values.__getitem__)
            per_image[item.image_index].append(
                FaceExpression(
                    box=_box(photos[item.image_index], item.face),
                    detection_score=item.face.score,
                    expression=classes[top],
                    confidence=values[top],
                    probabilities=dict(zip(classes, values, strict=True)),
                )
            )
        images = [
            ImageExpressions(
                index=i,
                filename=upload.filename,
                width=photo.original_size[0],
                height=photo.original_size[1],
                faces=faces,
            )
            for i, (upload, photo, faces) in enumerate(zip(request.uploads, photos, per_image, strict=True))
        ]
        return ClassifyResponse(model=self.engine.loaded.card.name, detect=request.detect, prior=request.prior, images=images)


# --------------------------------------------------------------------------- synthesize


@dataclass(frozen=True)
class SynthesizeRequest:
    upload: Upload
    targets: list[str]
    detect: bool = True
    face_index: int = 0
    output: OutputFormat = "photo"
    intensity: float = 1.0  # how strongly the target shows (FERSNet.decode_parts); the route fills in the card's


@dataclass(frozen=True)
class FaceToRedraw:
    """One face and every expression to redraw it with: encoded once, decoded once per target."""

    pixels: Tensor
    targets: Tensor  # T x classes, one-hot rows in request order
    intensity: float


@dataclass(frozen=True)
class SynthesizeContext:
    request: SynthesizeRequest
    photo: Photo
    face: Face
    faces_found: int
    model_input: Image.Image


@dataclass(frozen=True)
class RedrawBatch:
    """Faces of a batch, and the targets of all of them with the face each one redraws."""

    images: Tensor
    targets: Tensor
    sources: Tensor
    intensity: Tensor  # one per target: requests batched together may ask for different ones
    counts: list[int]


class SynthesizeAPI(_PhotoPipeline, BatchedAPI[SynthesizeRequest, SynthesizeContext, FaceToRedraw, Tensor, Response]):
    name = "synthesize"
    keeps_photo = True  # the context holds the decoded photo until the answer is encoded

    def reserve(self, request: ClassifyRequest | SynthesizeRequest) -> AbstractContextManager[object]:
        """As for classify, plus what the answer holds: the photo at full size and one redrawn copy at a time."""
        if self.budget is None or not isinstance(request, SynthesizeRequest):
            return super().reserve(request)
        self.require_detector(request)
        p = probe(request.upload, max_pixels=self.max_pixels)
        answer = 0 if request.output == "face" else 2 * p.size[0] * p.size[1]
        need = PixelNeed(total=p.decoded_pixels + answer, peak=p.decoded_pixels + p.kept_pixels + answer)
        return self.budget.lease(need, label="synthesize request")

    def decode(self, request: SynthesizeRequest) -> Decoded[SynthesizeContext, FaceToRedraw]:
        preprocess = self.engine.preprocess
        photo = decode_image(request.upload, max_pixels=self.max_pixels)
        faces = self.faces_in(photo, request)
        if request.detect:
            self.metrics.faces.labels(self.name).inc(len(faces))
        if not faces:
            raise NoFaceFound(f"no face found in {request.upload.label}; send a clearer photo, or detect=false for a ready-made face crop")
        if request.face_index >= len(faces):
            raise InvalidParameter(
                f"face={request.face_index} asked for, but {request.upload.label} has {len(faces)} face(s) (0 = largest)",
                parameter="face",
            )
        face = faces[request.face_index]
        model_input = preprocess.prepare(crop_faces(photo.image, [face], preprocess)[0])
        expressions = self.engine.expressions
        targets = one_hot([expressions.index(expression) for expression in request.targets], len(expressions))
        context = SynthesizeContext(request, photo, face, len(faces), model_input)
        return Decoded(context, [FaceToRedraw(preprocess.to_tensor(model_input), targets, request.intensity)])

    def batch(self, items: Sequence[FaceToRedraw]) -> RedrawBatch:
        counts = [len(item.targets) for item in items]
        sources = torch.repeat_interleave(torch.arange(len(items)), torch.tensor(counts))
        intensity = torch.tensor([item.intensity for item in items])[sources]
        return RedrawBatch(torch.stack([item.pixels for item in items]), torch.cat([item.targets for item in items]), sources,
                           intensity, counts)

    def predict(self, batch: RedrawBatch) -> list[Tensor]:
        faces = self.engine.synthesize(batch.images, batch.targets, batch.sources, batch.intensity)
        return list(faces.split(batch.counts))

    def unbatch(self, output: list[Tensor], count: int) -> list[Tensor]:
        return output[:count]

    def face_headers(self, context: SynthesizeContext) -> dict[str, str]:
        """Which face was used, for responses whose body is a picture."""
        box = _box(context.photo, context.face)
        headers = {
            "X-Face-Index": str(context.request.face_index),
            "X-Face-Box": f"{box.x},{box.y},{box.width},{box.height}",
            "X-Faces-Found": str(context.faces_found),
            "X-Expressions": ",".join(context.request.targets),
            "X-Intensity": f"{context.request.intensity:g}",
        }
        if context.face.score is not None:
            headers["X-Face-Score"] = f"{context.face.score:.4f}"
        return headers

    def _redrawn_photos(self, context: SynthesizeContext, faces: Tensor) -> tuple[Photo, tuple[int, int, int, int], Iterator[Image.Image]]:
        """The upload at its own size, the crop box in its pixels, and the photo redrawn once per target.

        Detection may have run on a reduced decode; the answer is drawn on the full one. The redrawn
        photos are made one at a time, as the caller takes them, so that only one copy is held at once.
        """
        preprocess = self.engine.preprocess
        photo = context.photo
        full = photo if photo.scale == 1.0 else decode_image(context.request.upload, max_pixels=self.max_pixels, max_side=None)
        box = scale_box(crop_box(context.face, photo.image.size, preprocess), photo.scale)
        turn = face_turn(context.face, photo.scale)
        return full, box, redrawn_photos(full.image, box, preprocess.to_tensor(context.model_input), faces, preprocess, turn)

    def encode(self, decoded: Decoded[SynthesizeContext, FaceToRedraw], outputs: Sequence[Tensor]) -> Response:
        context = decoded.context
        preprocess = self.engine.preprocess
        faces = outputs[0]
        headers = self.face_headers(context)
        output = context.request.output
        if output == "face":
            return Response(png_bytes(preprocess.to_image(faces[0])), media_type="image/png", headers=headers)
        full, box, photos = self._redrawn_photos(context, faces)
        lossy = is_lossy(full.format, context.request.upload.data)  # answered in kind: lossy for lossy, lossless else
        if output == "photo":
            body, media_type = encode_like(next(photos), full.format, lossy)
            return Response(body, media_type=media_type, headers=headers)
        if output == "grid":
            tiles = [("input", face_tile(full.image, box))]
            tiles += [(expression, face_tile(photo, box)) for expression, photo in zip(context.request.targets, photos, strict=True)]
            return Response(png_bytes(labelled_grid(tiles)), media_type="image/png", headers=headers)
        encoded = [encode_like(photo, full.format, lossy) for photo in photos]
        answer = SynthesizeResponse(
            model=self.engine.loaded.card.name,
            width=full.image.width,
            height=full.image.height,
            intensity=context.request.intensity,
            face=UsedFace(index=context.request.face_index, box=_box(context.photo, context.face),
                          detection_score=context.face.score, faces_found=context.faces_found),
            images=[
                SynthesizedFace(expression=expression, media_type=media_type, image_base64=base64.b64encode(data).decode("ascii"))
                for expression, (data, media_type) in zip(context.request.targets, encoded, strict=True)
            ],
        )
        return JSONResponse(answer.model_dump(mode="json"), headers=headers)

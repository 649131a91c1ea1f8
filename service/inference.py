"""The two batched endpoints, written as the five hooks of :class:`service.batching.BatchedAPI`.

classify
    decode: every upload -> photo -> faces (YuNet, or the whole image) -> one
    normalised crop per face; batch/predict/unbatch: stacked crops ->
    probabilities; encode: the faces of each image with their boxes and
    probabilities.
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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from fastapi.responses import JSONResponse, Response
from PIL import Image
from torch import Tensor

from model_core.faces import Face, FaceDetector, crop_faces, whole_image
from model_core.photo_edit import crop_box, encode_like, face_tile, grey_levels, redraw_in_photo, scale_box

from .batching import BatchedAPI, Decoded
from .encoding import labelled_grid, png_bytes
from .engine import Engine
from .errors import InvalidParameter, NoFaceFound
from .images import Photo, Upload, decode_image
from .metrics import Metrics
from .schemas import (
    Box,
    ClassifyResponse,
    FaceExpression,
    ImageExpressions,
    SynthesizedFace,
    SynthesizeResponse,
    UsedFace,
)

OutputFormat = Literal["photo", "face", "json", "grid"]


def _box(photo: Photo, face: Face) -> Box:
    x, y, w, h = photo.to_original(face.box)
    return Box(x=x, y=y, width=w, height=h)


def _faces_in(photo: Photo, detect: bool, detector: FaceDetector) -> list[Face]:
    return detector.detect(photo.image) if detect else [whole_image(photo.image)]


# --------------------------------------------------------------------------- classify


@dataclass(frozen=True)
class ClassifyRequest:
    uploads: list[Upload]
    detect: bool = True


@dataclass(frozen=True)
class FaceCrop:
    """One face to classify: where it came from, and its normalised pixels."""

    image_index: int
    face: Face
    pixels: Tensor


@dataclass(frozen=True)
class ClassifyContext:
    request: ClassifyRequest
    photos: list[Photo]


class _PhotoPipeline:
    """What both endpoints need to turn uploads into face crops and to count them."""

    def __init__(self, engine: Engine, detector: FaceDetector, metrics: Metrics, max_pixels: int) -> None:
        self.engine = engine
        self.detector = detector
        self.metrics = metrics
        self.max_pixels = max_pixels


class ClassifyAPI(_PhotoPipeline, BatchedAPI[ClassifyRequest, ClassifyContext, FaceCrop, Tensor, ClassifyResponse]):
    name = "classify"

    def decode(self, request: ClassifyRequest) -> Decoded[ClassifyContext, FaceCrop]:
        preprocess = self.engine.preprocess
        photos = [decode_image(upload, max_pixels=self.max_pixels) for upload in request.uploads]
        items: list[FaceCrop] = []
        for index, photo in enumerate(photos):
            faces = _faces_in(photo, request.detect, self.detector)
            if request.detect:
                self.metrics.faces.labels(self.name).inc(len(faces))
            for face, crop in zip(faces, crop_faces(photo.image, faces, preprocess), strict=True):
                items.append(FaceCrop(index, face, preprocess(crop)))
        return Decoded(ClassifyContext(request, photos), items)

    def batch(self, items: Sequence[FaceCrop]) -> Tensor:
        return torch.stack([item.pixels for item in items])

    def predict(self, batch: Tensor) -> Tensor:
        return self.engine.classify(batch)

    def unbatch(self, output: Tensor, count: int) -> list[Tensor]:
        return list(output[:count].unbind(0))

    def encode(self, decoded: Decoded[ClassifyContext, FaceCrop], outputs: Sequence[Tensor]) -> ClassifyResponse:
        classes = self.engine.classes
        request, photos = decoded.context.request, decoded.context.photos
        per_image: list[list[FaceExpression]] = [[] for _ in photos]
        for item, probabilities in zip(decoded.items, outputs, strict=True):
            values = probabilities.tolist()
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
        return ClassifyResponse(model=str(self.engine.loaded.card.get("name", "fersnet")), detect=request.detect, images=images)


# --------------------------------------------------------------------------- synthesize


@dataclass(frozen=True)
class SynthesizeRequest:
    upload: Upload
    targets: list[str]
    detect: bool = True
    face_index: int = 0
    output: OutputFormat = "photo"


@dataclass(frozen=True)
class FaceToRedraw:
    """One face and every expression to redraw it with: encoded once, decoded once per target."""

    pixels: Tensor
    targets: Tensor  # T x classes, one-hot rows in request order


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
    counts: list[int]


class SynthesizeAPI(_PhotoPipeline, BatchedAPI[SynthesizeRequest, SynthesizeContext, FaceToRedraw, Tensor, Response]):
    name = "synthesize"

    def decode(self, request: SynthesizeRequest) -> Decoded[SynthesizeContext, FaceToRedraw]:
        preprocess = self.engine.preprocess
        photo = decode_image(request.upload, max_pixels=self.max_pixels)
        faces = _faces_in(photo, request.detect, self.detector)
        if request.detect:
            self.metrics.faces.labels(self.name).inc(len(faces))
        if not faces:
            raise NoFaceFound(f"no face found in {request.upload.label}; send a clearer photo, or detect=false for a ready-made face crop")
        if request.face_index >= len(faces):
            raise InvalidParameter(
                f"face={request.face_index} asked for, but {request.upload.label} has {len(faces)} face(s) (0 = largest)"
            )
        face = faces[request.face_index]
        model_input = preprocess.prepare(crop_faces(photo.image, [face], preprocess)[0])
        classes = self.engine.classes
        targets = torch.zeros(len(request.targets), len(classes))
        for row, expression in enumerate(request.targets):
            targets[row, classes.index(expression)] = 1.0
        context = SynthesizeContext(request, photo, face, len(faces), model_input)
        return Decoded(context, [FaceToRedraw(preprocess.to_tensor(model_input), targets)])

    def batch(self, items: Sequence[FaceToRedraw]) -> RedrawBatch:
        counts = [len(item.targets) for item in items]
        sources = torch.repeat_interleave(torch.arange(len(items)), torch.tensor(counts))
        return RedrawBatch(torch.stack([item.pixels for item in items]), torch.cat([item.targets for item in items]), sources, counts)

    def predict(self, batch: RedrawBatch) -> list[Tensor]:
        faces = self.engine.synthesize(batch.images, batch.targets, batch.sources)
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
        }
        if context.face.score is not None:
            headers["X-Face-Score"] = f"{context.face.score:.4f}"
        return headers

    def _redrawn_photos(self, context: SynthesizeContext, faces: Tensor) -> tuple[Photo, tuple[int, int, int, int], list[Image.Image]]:
        """The upload at its own size with the face redrawn once per target, and the crop box in its pixels.

        Detection may have run on a reduced decode of a large JPEG; the answer is drawn on the full one.
        """
        preprocess = self.engine.preprocess
        photo = context.photo
        full = photo if photo.scale == 1.0 else decode_image(context.request.upload, max_pixels=self.max_pixels, max_side=None)
        box = scale_box(crop_box(context.face, photo.image.size, preprocess), photo.scale)
        before = grey_levels(preprocess.to_tensor(context.model_input), preprocess)
        return full, box, [redraw_in_photo(full.image, box, before, grey_levels(face, preprocess)) for face in faces]

    def encode(self, decoded: Decoded[SynthesizeContext, FaceToRedraw], outputs: Sequence[Tensor]) -> Response:
        context = decoded.context
        preprocess = self.engine.preprocess
        faces = outputs[0]
        headers = self.face_headers(context)
        output = context.request.output
        if output == "face":
            return Response(png_bytes(preprocess.to_image(faces[0])), media_type="image/png", headers=headers)
        full, box, photos = self._redrawn_photos(context, faces)
        if output == "photo":
            body, media_type = encode_like(photos[0], full.format)
            return Response(body, media_type=media_type, headers=headers)
        if output == "grid":
            tiles = [("input", face_tile(full.image, box))]
            tiles += [(expression, face_tile(photo, box)) for expression, photo in zip(context.request.targets, photos, strict=True)]
            return Response(png_bytes(labelled_grid(tiles)), media_type="image/png", headers=headers)
        encoded = [encode_like(photo, full.format) for photo in photos]
        body = SynthesizeResponse(
            model=str(self.engine.loaded.card.get("name", "fersnet")),
            width=full.image.width,
            height=full.image.height,
            face=UsedFace(index=context.request.face_index, box=_box(context.photo, context.face),
                          detection_score=context.face.score, faces_found=context.faces_found),
            images=[
                SynthesizedFace(expression=expression, media_type=media_type, image_base64=base64.b64encode(data).decode("ascii"))
                for expression, (data, media_type) in zip(context.request.targets, encoded, strict=True)
            ],
        )
        return JSONResponse(body.model_dump(mode="json"), headers=headers)

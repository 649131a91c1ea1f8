"""The JSON the service answers, as pydantic models with examples (they are what /docs shows).

The examples are responses captured from the running service with the
bundled placeholder checkpoint, so their numbers are real but meaningless.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from model_core.prior import PriorName

from .errors import NoFaceFound, ServiceError, error_body

# Any: ConfigDict.json_schema_extra takes a JSON dict, and dict[str, float] is not one to mypy (dict is invariant).
_PROBABILITIES_EXAMPLE: dict[str, Any] = {
    "angry": 0.1387,
    "disgust": 0.1201,
    "fear": 0.1622,
    "happy": 0.2127,
    "sad": 0.1311,
    "surprise": 0.1095,
    "neutral": 0.1257,
}


class Box(BaseModel):
    """A face's box in the pixels of the uploaded image (origin top left)."""

    x: int = Field(description="Left edge.", examples=[188])
    y: int = Field(description="Top edge.", examples=[97])
    width: int = Field(examples=[121])
    height: int = Field(examples=[148])


# --------------------------------------------------------------------------- /v1/classify


class FaceExpression(BaseModel):
    """One face and the model's opinion of its expression."""

    box: Box
    detection_score: float | None = Field(
        description="YuNet's confidence that this is a face (0..1); null when detection was skipped (detect=false), or "
        "found no face in a picture too small to be a photo (under twice the model's input, 96 pixels for the default), "
        "which is then read whole as the face crop it is.", examples=[0.91]
    )
    expression: str = Field(description="The most probable expression.", examples=["happy"])
    confidence: float = Field(
        description="Probability of that expression, calibrated on the model's validation split where its card has a "
        "temperature (see /v1/models `calibration`), under the answer's `prior`.",
        examples=[0.2127],
    )
    probabilities: dict[str, float] = Field(
        description="Probability of every expression the model knows, in the model's class order; they sum to 1.",
        examples=[_PROBABILITIES_EXAMPLE],
    )


class ImageExpressions(BaseModel):
    """The faces found in one uploaded image (largest first; empty when none was found)."""

    index: int = Field(description="Position of the image in the request.", examples=[0])
    filename: str | None = Field(description="The upload's file name, if it had one.", examples=["photo.jpg"])
    width: int = Field(examples=[400])
    height: int = Field(examples=[300])
    faces: list[FaceExpression]


class ClassifyResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": "placeholder-untrained",
                    "detect": True,
                    "prior": "natural",
                    "images": [
                        {
                            "index": 0,
                            "filename": "photo.jpg",
                            "width": 400,
                            "height": 300,
                            "faces": [
                                {
                                    "box": {"x": 188, "y": 97, "width": 121, "height": 148},
                                    "detection_score": 0.91,
                                    "expression": "happy",
                                    "confidence": 0.2127,
                                    "probabilities": _PROBABILITIES_EXAMPLE,
                                }
                            ],
                        }
                    ],
                }
            ]
        }
    )

    model: str = Field(description="Name of the served checkpoint (see /v1/models).")
    detect: bool = Field(description="Whether faces were detected (false: each image was taken as one face crop).")
    prior: PriorName = Field(
        description="The class prior the probabilities assume: `natural`, the model's training data's class frequencies "
        "(see /v1/models `prior`), or `balanced`, every expression equally likely. The request's, or the model's default."
    )
    images: list[ImageExpressions]


# --------------------------------------------------------------------------- /v1/synthesize


class UsedFace(BaseModel):
    """Which face of the uploaded image was redrawn."""

    index: int = Field(description="Its position among the faces found, largest first.", examples=[0])
    box: Box
    detection_score: float | None = Field(description="null when detection was skipped, or a small picture without a "
                                          "face the detector found was read whole.", examples=[0.91])
    faces_found: int = Field(description="How many faces the image has: the detector's, or 1 for a small picture read whole.",
                             examples=[1])


class SynthesizedFace(BaseModel):
    expression: str = Field(examples=["happy"])
    media_type: str = Field(description="The picture's type: the upload's family (JPEG, WebP) or PNG.", examples=["image/png"])
    image_base64: str = Field(
        description="The uploaded photo with the face redrawn, base64-encoded, at the photo's own size.",
        examples=["iVBORw0KGgoAAAANSUhEUgAA..."],
    )


class SynthesizeResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": "fer2013_small_masked",
                    "width": 640,
                    "height": 480,
                    "intensity": 1.0,
                    "face": {
                        "index": 0,
                        "box": {"x": 188, "y": 97, "width": 121, "height": 148},
                        "detection_score": 0.91,
                        "faces_found": 1,
                    },
                    "images": [
                        {"expression": "happy", "media_type": "image/png", "image_base64": "iVBORw0KGgoAAAANSUhEUgAAAoAAAAHg..."},
                        {"expression": "surprise", "media_type": "image/png", "image_base64": "iVBORw0KGgoAAAANSUhEUgAAAoAAAAHg..."},
                    ],
                }
            ]
        }
    )

    model: str
    width: int = Field(description="Width of every returned picture in pixels: the uploaded photo's.")
    height: int
    intensity: float = Field(description="How strongly each target was drawn: the request's, or the model's default.",
                             examples=[1.0])
    face: UsedFace
    images: list[SynthesizedFace] = Field(description="The photo redrawn once per requested target, in request order.")


# --------------------------------------------------------------------------- operations


class InputSpec(BaseModel):
    img_size: int = Field(description="Faces are resized to img_size x img_size.", examples=[48])
    in_chans: int = Field(description="1 = greyscale, 3 = RGB.", examples=[1])
    mean: float = Field(examples=[0.5])
    std: float = Field(examples=[0.5])
    face_scale: float = Field(description="Crop side as a multiple of the detected box's longer side.", examples=[0.98])
    face_shift: float = Field(description="Crop centre moved down by this many box heights.", examples=[0.0])


class RuntimeInfo(BaseModel):
    device: str = Field(examples=["cpu"])
    precision: str = Field(examples=["float32"])
    batch_sizes: list[int] | None = Field(description="Fixed shapes batches are padded to (null: none).", examples=[None])
    max_batch_size: int = Field(examples=[32])
    max_wait_ms: float = Field(examples=[10.0])
    face_detection: bool = Field(
        description="Whether this server finds faces in photos (YuNet). Without it (a Python other than 3.11, for which "
        "the detector has no wheel) every upload must be a face crop sent with detect=false; detect=true answers 501.",
        examples=[True],
    )
    image_formats: list[str] = Field(
        description="The image formats this server decodes; others answer 415. HEIC and AVIF depend on the "
        "installation's decoders (pi-heif, Pillow's libavif).",
        examples=[["JPEG", "PNG", "WebP", "HEIC", "AVIF", "BMP", "GIF", "TIFF"]],
    )


class BundledModel(BaseModel):
    """One checkpoint bundled with model_core (``model_core.registry``), and whether it is here and served."""

    name: str = Field(description="What FERSNET_CHECKPOINT (or --checkpoint) takes to serve it.", examples=["default"])
    description: str = Field(examples=["the served default, in the wheel and the image"])
    installed: bool = Field(description="Whether this installation has it (a wheel or the image has 'default' alone).")
    served: bool = Field(description="Whether it is the model this process serves.")
    variant: str | None = Field(None, description="From its card; null where not installed.", examples=["fersnet_small"])
    sharing: str | None = Field(None, examples=["selective"])
    synthesis: bool | None = Field(None, description="Whether it can serve /v1/synthesize; null where not installed.")
    sha256: str | None = Field(None, description="SHA-256 of its weights, from its card; null where not installed.")


class ModelInfo(BaseModel):
    """The served checkpoint's model card, how this process runs it, and the checkpoints bundled with it."""

    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "name": "fer2013_ferplus_small_tta",
                    "variant": "fersnet_small",
                    "sharing": "selective",
                    "synthesis": True,
                    "classes": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt"],
                    "expressions": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"],
                    "input": {"img_size": 48, "in_chans": 1, "mean": 0.5, "std": 0.5, "face_scale": 0.98, "face_shift": 0.0},
                    "sha256": "468cfe1ce6ff31e9115726a92d9d81376ca1b4a96c17a911ceccedc6fdc04c27",
                    "parameters": 7072305,
                    "metrics": {"ferplus/test": {"accuracy": 0.80619, "macro_f1": 0.66638, "images": 3395},
                                "expression_head/fer2013/test": {"accuracy": 0.71719, "macro_f1": 0.70179, "images": 3589}},
                    "intensity": 1.2,
                    "prior": {"frequencies": {"angry": 0.084009, "disgust": 0.015935, "fear": 0.035589, "happy": 0.262513,
                                              "sad": 0.144096, "surprise": 0.120928, "neutral": 0.318832, "contempt": 0.018098},
                              "default": "balanced", "measured_on": "ferplus:train from ../shared/data/ferplus, soft labels"},
                    "training": {"answer_tail": {"selected_epoch": 6, "selected_on": "ferplus:val (majority vote)"}},
                    "created": "2026-12-05T14:12:20+00:00",
                    "config": {"variant": "fersnet_small", "img_size": 48, "in_chans": 1, "num_classes": 7, "answer_classes": 8,
                               "flip_average": True, "test_time_zooms": [1.05]},
                    "runtime": {"device": "cpu", "precision": "bfloat16", "batch_sizes": None, "max_batch_size": 32, "max_wait_ms": 10.0,
                                "face_detection": True, "image_formats": ["JPEG", "PNG", "WebP", "HEIC", "AVIF", "BMP", "GIF", "TIFF"]},
                    "bundled": [
                        {"name": "default", "description": "the served default, in the wheel and the image",
                         "installed": True, "served": True, "variant": "fersnet_small", "sharing": "selective",
                         "synthesis": True,
                         "sha256": "468cfe1ce6ff31e9115726a92d9d81376ca1b4a96c17a911ceccedc6fdc04c27"},
                    ],
                }
            ]
        },
    )

    name: str
    variant: str
    sharing: str = Field(description="'selective' (the paper's ConvFLU gates), 'hard' or 'none' (no synthesis).")
    synthesis: bool = Field(description="Whether /v1/synthesize is available for this model.")
    classes: list[str] = Field(description="What /v1/classify answers, in its order.")
    expressions: list[str] = Field(
        description="What /v1/synthesize draws (its `targets`): the classes of the expression head. The same as "
        "`classes` unless the model answers with a head of its own (an answer tail, e.g. FER+'s eight classes with "
        "contempt beside FER2013's seven)."
    )
    input: InputSpec
    sha256: str = Field(description="SHA-256 of the checkpoint's weights file.")
    parameters: int = Field(description="The network's parameter count.")
    metrics: dict[str, Any] = Field(description="Test metrics recorded in the card when the model was evaluated.")
    calibration: dict[str, Any] = Field(
        default_factory=dict,
        description="The temperature that calibrates the probabilities (empty: none fitted), where it was fitted, and "
        "the calibration measured before and after (NLL, expected calibration error, mean confidence).",
    )
    intensity: float = Field(
        1.0, description="The synthesis intensity a /v1/synthesize request gets when it names none (1: the edit as trained)."
    )
    prior: dict[str, Any] = Field(
        default_factory=dict,
        description="How often each class occurred in the served head's training targets (`frequencies`), and the class "
        "prior a /v1/classify request gets when it names none (`default`: natural or balanced; the card's, or "
        "FERSNET_PRIOR's). Empty: the model answers under its training data's prior only.",
    )
    training: dict[str, Any] = Field(description="How the model was trained, as recorded in the card.")
    created: str = Field(description="When the checkpoint was written (ISO 8601).")
    config: dict[str, Any] = Field(description="The network's configuration (FERSNetConfig).")
    runtime: RuntimeInfo
    bundled: list[BundledModel] = Field(description="Every checkpoint bundled with model_core, in registry order.")


class Health(BaseModel):
    status: Literal["alive"] = "alive"


class Readiness(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ready", "model": "placeholder-untrained", "device": "cpu"}]})

    status: Literal["ready"] = "ready"
    model: str
    device: str


# --------------------------------------------------------------------------- errors


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code.", examples=[NoFaceFound.code])
    message: str = Field(description="What went wrong, for people.", examples=[NoFaceFound.example])
    status: int = Field(description="The HTTP status, repeated.", examples=[NoFaceFound.status_code])
    details: list[dict[str, Any]] | None = Field(None, description="For 422: each invalid field.")


class ErrorResponse(BaseModel):
    """The one shape of every error answer."""

    error: ErrorBody


def error_responses(*errors: type[ServiceError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the errors a route answers, one per status, built from their classes.

    Each status lists every code it may carry with what it means, and shows the first listed error's example.
    """
    by_status: dict[int, list[type[ServiceError]]] = {}
    for error in errors:
        by_status.setdefault(error.status_code, []).append(error)
    out: dict[int | str, dict[str, Any]] = {}
    for status, group in sorted(by_status.items()):
        example = group[0]
        out[status] = {
            "model": ErrorResponse,
            "description": "; ".join(f"`{error.code}`: {error.summary}" for error in group),
            "content": {"application/json": {"example": error_body(status, example.code, example.example)}},
        }
    return out

"""``POST /v1/synthesize``: a face redrawn with other expressions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import Response

from model_core import canonical
from model_core.card import MAX_INTENSITY

from ..deps import ReadyEngine, RequestDeadline, RuntimeDep, reject_unknown_parameters, require_api_key, require_multipart
from ..errors import UPLOAD_ERRORS, DetectionUnavailable, InvalidParameter, NoFaceFound, SynthesisUnavailable
from ..images import ACCEPTED, Upload
from ..inference import OutputFormat, SynthesizeRequest
from ..schemas import SynthesizeResponse, error_responses
from .options import query_or_form

router = APIRouter(prefix="/v1", tags=["inference"], dependencies=[Depends(require_api_key)])

DESCRIPTION = """
Upload one image as a `multipart/form-data` part named `image` and name the
target expressions in `targets` (comma-separated or repeated, or `all`).
Every parameter may be sent as a query parameter or as a form field beside
the image; one the route does not know is refused (422) rather than ignored.
The service finds the faces, takes the largest (or the one `face` names),
and redraws it with each target expression. The answer is the uploaded photo
itself, at its own size and in its own colours, with that face redrawn:
the network's change is enlarged to the face and blended in with a soft
edge, pixels away from the face are returned unchanged. The face is encoded
once, however many targets are asked for.

* `format=photo` (the default for one target): the photo in the upload's
  format and fidelity: JPEG for JPEG and HEIC, AVIF for AVIF, WebP for WebP
  (lossless for a lossless one), PNG otherwise;
* `format=json` (the default for several targets): one base64 photo per target;
* `format=grid`: one labelled PNG of the face, before and with each target;
* `format=face`: the bare face the network drew, grey, at its input size
  (one target; `png` is its older name).

`intensity` says how strongly each target shows: 0 returns the face as it
was, 1 is the network's edit as trained, and above 1 the parts of the face the
edit moved only in part are moved further (up to 3), while the rest stays
untouched. Without it, the model's default applies (`/v1/models`:
`intensity`), chosen where an independent classifier reads the target best.

Every answer says which face was used: the `face` object in JSON, and the
headers `X-Face-Index`, `X-Face-Box` (`x,y,width,height` in the uploaded
image's pixels), `X-Face-Score` and `X-Faces-Found`.

```
curl -F image=@photo.jpg "http://localhost:8000/v1/synthesize?targets=happy" -o happy.jpg
```
"""

_PNG_AND_JSON: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The redrawn photo (one target), JSON (several), a PNG grid or the bare face (format=face).",
        "content": {
            media: {"schema": {"type": "string", "format": "binary"}} for media in ("image/jpeg", "image/png", "image/webp", "image/avif")
        },
        "headers": {
            "X-Face-Index": {"description": "Which detected face was used (0 = largest).", "schema": {"type": "integer"}},
            "X-Face-Box": {"description": "Its box: x,y,width,height.", "schema": {"type": "string"}},
            "X-Face-Score": {"description": "The detector's score (absent when detect=false).", "schema": {"type": "number"}},
            "X-Faces-Found": {"description": "Faces found in the image.", "schema": {"type": "integer"}},
            "X-Intensity": {"description": "How strongly the targets were drawn.", "schema": {"type": "number"}},
        },
    }
}


def parse_targets(values: list[str], expressions: tuple[str, ...]) -> list[str]:
    """Expression names from ``targets`` (comma-separated and/or repeated; aliases allowed; 'all'), deduplicated,
    each one of ``expressions``: the ones the model draws (a class only its answer tail knows is refused)."""
    names = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if not names:
        raise InvalidParameter("targets: name at least one expression, or 'all'", parameter="targets")
    targets: list[str] = []
    for name in names:
        if name.lower() == "all":
            continue
        try:
            expression = canonical(name)
        except KeyError:
            expression = name
        if expression not in expressions:
            shown = name if len(name) <= 40 else f"{name[:40]}..."  # a client's typo, not a page of it echoed back
            raise InvalidParameter(f"targets: unknown expression {shown!r}; this model draws {', '.join(expressions)} (or 'all')",
                                   parameter="targets")
        if expression not in targets:
            targets.append(expression)
    return list(expressions) if any(name.lower() == "all" for name in names) else targets


FormatParameter = Literal["auto", "photo", "face", "png", "json", "grid"]


def choose_format(requested: FormatParameter, targets: list[str]) -> OutputFormat:
    """The answer's form: ``auto`` is a photo for one target and JSON for several; ``png`` is ``face``'s older name."""
    if requested == "auto":
        return "photo" if len(targets) == 1 else "json"
    chosen: OutputFormat = "face" if requested == "png" else requested
    if chosen in ("photo", "face") and len(targets) > 1:
        raise InvalidParameter(f"format={requested} returns one picture; ask for one target, or use format=json or format=grid",
                               parameter="format")
    return chosen


@router.post(
    "/synthesize",
    response_model=SynthesizeResponse,
    summary="Redraw a face with one or more target expressions",
    description=DESCRIPTION,
    responses={
        **_PNG_AND_JSON,
        **error_responses(NoFaceFound, *UPLOAD_ERRORS, SynthesisUnavailable, DetectionUnavailable),  # no_face: 400's example
    },
    dependencies=[Depends(require_multipart), Depends(reject_unknown_parameters)],
)
async def synthesize(
    runtime: RuntimeDep,
    engine: ReadyEngine,
    deadline: RequestDeadline,
    image: Annotated[UploadFile, File(description=f"One photo or face crop ({ACCEPTED}).")],
    targets: Annotated[
        list[str] | None,
        Query(
            description="Target expressions from /v1/models' `expressions`: comma-separated, repeated, or `all`.",
            examples=["happy,surprise"],
        ),
    ] = None,
    form_targets: Annotated[
        list[str] | None, Form(alias="targets", description="The same as the `targets` query parameter, sent as form fields.")
    ] = None,
    detect: Annotated[bool | None, Query(description="Find the face (default: true). `false`: the image already is a face crop.")] = None,
    face: Annotated[int | None, Query(ge=0, le=1000, description="Which detected face to redraw: 0 (the default) is the largest.")] = None,
    format: Annotated[
        FormatParameter | None,
        Query(description="`auto` (the default): the redrawn photo for one target, JSON for several. `grid`: one labelled "
              "PNG of the face with every target. `face`: the bare model-sized face."),
    ] = None,
    intensity: Annotated[
        float | None,
        Query(ge=0, le=MAX_INTENSITY, allow_inf_nan=False, description="How strongly each target shows: 0 (unchanged) to 3; 1 is the edit as "
              "trained. Default: the model's (`/v1/models`).", examples=[1.0]),
    ] = None,
    form_detect: Annotated[bool | None, Form(alias="detect", description="The same as the `detect` query parameter.")] = None,
    form_face: Annotated[int | None, Form(alias="face", ge=0, le=1000, description="The same as the `face` query parameter.")] = None,
    form_format: Annotated[
        FormatParameter | None, Form(alias="format", description="The same as the `format` query parameter.")
    ] = None,
    form_intensity: Annotated[
        float | None, Form(alias="intensity", ge=0, le=MAX_INTENSITY, allow_inf_nan=False, description="The same as the `intensity` query parameter.")
    ] = None,
) -> Response:
    if not engine.has_synthesis:
        raise SynthesisUnavailable("this model was trained without the synthesis branch (sharing='none'); only /v1/classify is served")
    expressions = parse_targets((targets or []) + (form_targets or []), engine.expressions)
    request = SynthesizeRequest(
        upload=Upload(await image.read(), image.filename, image.content_type, 0),
        targets=expressions,
        detect=query_or_form("detect", detect, form_detect, True),
        face_index=query_or_form("face", face, form_face, 0),
        output=choose_format(query_or_form("format", format, form_format, "auto"), expressions),
        intensity=query_or_form("intensity", intensity, form_intensity, engine.loaded.intensity),
    )
    assert runtime.synthesizer is not None  # ReadyEngine guarantees a started runtime
    return await runtime.synthesizer.handle(request, deadline)

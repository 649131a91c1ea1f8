"""``POST /v1/classify``: the expression of every face in one or more photos."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile

from model_core.prior import PriorName

from ..deps import ReadyEngine, RequestDeadline, RuntimeDep, SettingsDep, reject_unknown_parameters, require_api_key, require_multipart
from ..errors import UPLOAD_ERRORS, DetectionUnavailable, InvalidParameter, PayloadTooLarge
from ..images import ACCEPTED, Upload
from ..inference import ClassifyRequest
from ..schemas import ClassifyResponse, error_responses
from .options import query_or_form

router = APIRouter(prefix="/v1", tags=["inference"], dependencies=[Depends(require_api_key)])

DESCRIPTION = f"""
Upload one or more photos as `multipart/form-data` parts named `images`
({ACCEPTED}). In each photo the service finds the faces (YuNet),
crops each one the way the model was trained, and classifies all the crops
of all concurrent requests together in batches.

Each image in the answer lists its faces, largest first, each with its box
(in the uploaded image's pixels), the detector's score, the most probable
expression and the probability of every expression (they sum to 1). A photo
without a face has an empty `faces` list.

With `detect=false` (a query parameter, or a form field beside the images)
each image is taken as an already cropped face (such as a FER2013 image) and
classified whole.

`prior` says how likely each expression is before the face is seen.
`natural` is the model's training data's class frequencies (for FER+, a third
neutral and a quarter happy: photos from the web). `balanced` treats every
expression as equally likely, which suits posed expressions and anyone trying
each expression in turn. The default is the model's (see /v1/models `prior`),
and the answer names the prior it used.

A parameter or form field the route does not know is refused (422) rather
than ignored.

```
curl -F images=@photo.jpg http://localhost:8000/v1/classify
```
"""


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    summary="Recognise the expression of every face in one or more photos",
    description=DESCRIPTION,
    responses=error_responses(*UPLOAD_ERRORS, DetectionUnavailable),
    dependencies=[Depends(require_multipart), Depends(reject_unknown_parameters)],
)
async def classify(
    runtime: RuntimeDep,
    engine: ReadyEngine,
    settings: SettingsDep,
    deadline: RequestDeadline,
    images: Annotated[list[UploadFile], File(description=f"One or more photos ({ACCEPTED}), each in a part named `images`.")],
    detect: Annotated[
        bool | None, Query(description="Find faces in each image (default: true). `false`: each image already is one face crop.")
    ] = None,
    form_detect: Annotated[bool | None, Form(alias="detect", description="The same as the `detect` query parameter.")] = None,
    prior: Annotated[
        PriorName | None,
        Query(description="The class prior the probabilities assume: `natural` (the training data's class frequencies) "
                          "or `balanced` (every expression equally likely). Default: the model's (/v1/models `prior`)."),
    ] = None,
    form_prior: Annotated[PriorName | None, Form(alias="prior", description="The same as the `prior` query parameter.")] = None,
) -> ClassifyResponse:
    if len(images) > settings.max_images_per_request:
        raise PayloadTooLarge(f"{len(images)} images in one request; the limit is {settings.max_images_per_request}")
    chosen = query_or_form("prior", prior, form_prior, engine.prior)
    if chosen not in engine.loaded.priors:
        raise InvalidParameter(f"prior={chosen}: model {engine.loaded.card.name}'s card records no class frequencies, "
                               "so it answers under its training data's prior only (prior=natural)", parameter="prior")
    uploads = [Upload(await f.read(), f.filename, f.content_type, i) for i, f in enumerate(images)]
    assert runtime.classifier is not None  # ReadyEngine guarantees a started runtime
    request = ClassifyRequest(uploads, query_or_form("detect", detect, form_detect, True), chosen)
    return await runtime.classifier.handle(request, deadline)

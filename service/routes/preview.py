"""``POST /v1/preview``: an upload as the service reads it, as a JPEG that every browser shows."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import Response

from ..deps import RequestDeadline, RuntimeDep, reject_unknown_parameters, require_api_key, require_multipart
from ..errors import UPLOAD_ERRORS
from ..images import ACCEPTED, Upload
from ..preview import DEFAULT_SIDE, MAX_SIDE, MIN_SIDE
from ..schemas import error_responses
from .options import query_or_form

router = APIRouter(prefix="/v1", tags=["inference"], dependencies=[Depends(require_api_key)])

DESCRIPTION = f"""
Upload one image as a `multipart/form-data` part named `image`; the answer
is that picture as the service reads it, as a JPEG: turned upright by its
EXIF orientation (as `/v1/classify` finds faces in it), transparency on
white, at most `max_side` pixels a side (default {DEFAULT_SIDE}). The service
reads HEIC, AVIF and TIFF, which most browsers cannot show; the web page
asks for a preview where the browser cannot show an upload.

Its proportions are the upload's: scale a face box from `/v1/classify` by
`preview width / image width` to draw it on the preview.

```
curl -F image=@IMG_0001.heic http://localhost:8000/v1/preview -o preview.jpg
```
"""


@router.post(
    "/preview",
    summary="An upload as the service reads it, upright, as a JPEG any browser shows",
    description=DESCRIPTION,
    response_class=Response,
    responses={
        200: {"description": "The picture, upright, as JPEG.", "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}},
        **error_responses(*UPLOAD_ERRORS),
    },
    dependencies=[Depends(require_multipart), Depends(reject_unknown_parameters)],
)
async def preview(
    runtime: RuntimeDep,
    deadline: RequestDeadline,
    image: Annotated[UploadFile, File(description=f"One picture ({ACCEPTED}).")],
    max_side: Annotated[int | None, Query(ge=MIN_SIDE, le=MAX_SIDE, description="The preview's longest side at most, in pixels.")] = None,
    form_max_side: Annotated[
        int | None, Form(alias="max_side", ge=MIN_SIDE, le=MAX_SIDE, description="The same as the `max_side` query parameter.")
    ] = None,
) -> Response:
    previewer = runtime.require_previewer()
    side = query_or_form("max_side", max_side, form_max_side, DEFAULT_SIDE)
    upload = Upload(await image.read(), image.filename, image.content_type)
    return Response(await previewer.handle(upload, side, deadline), media_type="image/jpeg")

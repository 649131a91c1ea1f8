"""Operations: liveness, readiness, Prometheus metrics, and the model card."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from model_core import registry
from model_core.checkpoint import read_card
from model_core.registry import Bundled
from model_core.typed_json import to_json

from ..deps import RuntimeDep, require_api_key
from ..errors import NotReady, ShuttingDown, Unauthorized
from ..images import FORMAT_NAMES
from ..schemas import BundledModel, Health, InputSpec, ModelInfo, Readiness, RuntimeInfo, error_responses

router = APIRouter(tags=["operations"])


# HEAD as well as GET: uptime checkers and load balancers probe with HEAD (the same answer, its body dropped).
@router.head("/healthz", include_in_schema=False)
@router.get(
    "/healthz",
    response_model=Health,
    summary="Liveness: the process is up",
    description="200 while the process serves HTTP, from before warm-up until shutdown; 503 only if warm-up failed.",
    responses=error_responses(NotReady),
)
async def healthz(runtime: RuntimeDep) -> Health:
    if runtime.state == "failed":
        raise NotReady(runtime.failure or "the model failed to start")
    return Health()


@router.head("/readyz", include_in_schema=False)
@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: the model is loaded and warmed up",
    description="503 (with Retry-After) while the model loads and runs every batch shape once, and again once shutdown begins.",
    responses=error_responses(NotReady, ShuttingDown),
)
async def readyz(runtime: RuntimeDep) -> Readiness:
    engine = runtime.require_ready()
    return Readiness(model=engine.loaded.card.name, device=str(engine.device))


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="Requests by route and status, latencies, queue wait, compute time, batch sizes, queue depth, images and faces, "
    "model load time, and GPU memory on CUDA. Names are listed in `service.metrics.EXPORTED_NAMES`.",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}, "description": "Prometheus text format."}},
)
async def metrics(runtime: RuntimeDep) -> Response:
    runtime.update_gpu_memory()
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)


models_router = APIRouter(prefix="/v1", tags=["model"], dependencies=[Depends(require_api_key)])


@models_router.get(
    "/models",
    response_model=ModelInfo,
    summary="The served model's card, and the bundled checkpoints",
    description="What the checkpoint is (variant, the classes it answers, the expressions it draws, input size, "
    "weights' sha256, recorded test metrics), how "
    "it runs here, and every checkpoint bundled with model_core (`bundled`: which are installed, which is served).",
    responses=error_responses(Unauthorized, NotReady),
)
async def models(runtime: RuntimeDep) -> ModelInfo:
    engine = runtime.engine
    if engine is None:
        raise NotReady("the model is still loading", retry_after_s=runtime.settings.retry_after_s)
    card = engine.loaded.card
    s = runtime.settings
    return ModelInfo(
        name=card.name,
        variant=card.variant,
        sharing=card.sharing,
        synthesis=engine.has_synthesis,
        classes=list(engine.classes),
        expressions=list(engine.expressions),
        input=InputSpec(**card.input.to_dict()),
        sha256=card.weights.sha256,
        parameters=card.parameters,
        metrics=card.metrics,
        calibration=to_json(card.calibration) if card.calibration else {},
        intensity=engine.loaded.intensity,
        prior=(to_json(card.prior) | {"default": engine.prior}) if card.prior else {},
        training=card.training,
        created=card.created,
        config=card.config.to_dict(),
        runtime=RuntimeInfo(
            device=str(engine.device),
            precision=engine.precision,
            batch_sizes=engine.batch_sizes,
            max_batch_size=s.max_batch_size,
            max_wait_ms=s.max_wait_ms,
            face_detection=runtime.detector is not None,
            image_formats=FORMAT_NAMES,
        ),
        bundled=[_bundled(entry, engine.loaded.path) for entry in registry.BUNDLED.values()],
    )


def _bundled(entry: Bundled, served: Path) -> BundledModel:
    """A registry entry as /v1/models lists it, with what its card says where this installation has it."""
    if not entry.installed:
        return BundledModel(name=entry.name, description=entry.description, installed=False, served=False)
    card = read_card(entry.folder)
    return BundledModel(
        name=entry.name,
        description=entry.description,
        installed=True,
        served=entry.folder.resolve() == served.resolve(),
        variant=card.variant,
        sharing=card.sharing,
        synthesis=card.synthesis,
        sha256=card.weights.sha256,
    )

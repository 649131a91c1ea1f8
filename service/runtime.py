"""What one running app holds: the engine, the compute thread, the two batchers, the detector, and whether it is ready.

The life of a :class:`Runtime` follows the app's lifespan::

    starting --start()--> warming_up --(every batch shape ran)--> ready --stop()--> stopping
                                   \\--(warm-up raised)--> failed

``start()`` loads the checkpoint before the server takes any request, so a
bad checkpoint stops the process at once with ``CheckpointError``'s message.
``python -m service`` calls :meth:`Runtime.load` even earlier, before uvicorn
starts, so that message is one line rather than a lifespan traceback;
``start()`` then uses the engine already loaded.
Warm-up then runs in the background: ``/healthz`` answers meanwhile (the
process is alive), ``/readyz`` and the inference endpoints answer 503 with
``Retry-After`` until every batch shape has run once.

The runtime owns the one :class:`~service.batching.ComputeThread` that runs
model work: it lends it to both batchers (which put their batches on it, where
each endpoint's ``predict`` calls the engine) and runs warm-up on it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Literal

import anyio

from model_core.faces import DetectorUnavailable, FaceDetector

from .batching import Batcher, BatcherOptions, ComputeThread
from .budget import PixelBudget
from .engine import Engine
from .errors import NotReady, ShuttingDown
from .inference import ClassifyAPI, SynthesizeAPI
from .memory import trim_in_background
from .metrics import ServiceMetrics
from .preview import Previewer
from .settings import Settings

log = logging.getLogger(__name__)

State = Literal["starting", "warming_up", "ready", "failed", "stopping"]


class Runtime:
    """Everything one app instance serves with; created by ``create_app``, started by its lifespan."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or ServiceMetrics()
        #: None where this Python lacks YuNet: the service then serves face crops (detect=false) alone, and says why.
        self.detector: FaceDetector | None = None
        self.no_detector = ""
        try:
            self.detector = FaceDetector(settings.detect_confidence, settings.max_faces_per_image)
        except DetectorUnavailable as e:
            self.no_detector = e.reason
            log.warning("no face detection: %s; requests must send face crops (detect=false)", e.reason)
        #: Decoded pixels held by requests in flight, shared by both endpoints (service.budget).
        self.pixels = PixelBudget(
            settings.max_request_pixels,
            settings.max_inflight_pixels,
            settings.retry_after_s,
            on_change=self.metrics.decoded_pixels.set,
            on_refusal=self.metrics.refused.labels("pixels").inc,
            on_idle=trim_in_background(),
        )
        self.engine: Engine | None = None
        #: The one thread every forward pass runs on, both endpoints' and warm-up's.
        self.compute = ComputeThread()
        self.classifier: Batcher | None = None
        self.synthesizer: Batcher | None = None
        self.previewer: Previewer | None = None
        self.state: State = "starting"
        self.failure: str | None = None
        self._warmup: asyncio.Task[None] | None = None
        self._load_started = time.monotonic()

    # ------------------------------------------------------------------ life cycle

    def load(self) -> Engine:
        """Load and self-test the checkpoint now (synchronously); raises ``CheckpointError`` for a bad one."""
        if self.engine is None:
            self._load_started = time.monotonic()
            self.engine = Engine.load(self.settings)
        return self.engine

    async def start(self) -> None:
        """Load the checkpoint unless :meth:`load` did (raising if it is bad), start the batchers, and begin warming up."""
        started = self._load_started if self.engine is not None else time.monotonic()
        s = self.settings
        engine = self.engine if self.engine is not None else await anyio.to_thread.run_sync(Engine.load, s)
        self.engine = engine
        log.info(
            "loaded %s (%s, sha256 %s...) on %s, %s",
            engine.loaded.card.name,
            engine.loaded.card.variant,
            engine.loaded.sha256[:12],
            engine.device,
            engine.precision,
        )
        decoders = anyio.CapacityLimiter(s.decode_workers)  # every endpoint's decoding shares these threads
        batching = BatcherOptions(
            compute=self.compute.run,
            workers=decoders,
            encoders=anyio.CapacityLimiter(s.decode_workers),
            metrics=self.metrics,
            max_batch_size=s.max_batch_size,
            max_wait_s=s.max_wait_s,
            max_queue=s.max_queue,
            retry_after_s=s.retry_after_s,
        )
        budget = self.pixels
        pipeline = (engine, self.detector, self.metrics, s.max_image_pixels, budget, self.no_detector)
        self.classifier = Batcher(ClassifyAPI(*pipeline), **batching)
        self.synthesizer = Batcher(SynthesizeAPI(*pipeline), **batching)
        self.previewer = Previewer(s.max_image_pixels, budget, decoders)
        self.classifier.start()
        self.synthesizer.start()
        for endpoint in (self.classifier.name, self.synthesizer.name):
            # Create every labelled series at zero, so dashboards see them before the first request.
            m = self.metrics
            m.queue_depth.labels(endpoint).set(0)
            m.images.labels(endpoint)
            m.faces.labels(endpoint)
            m.batch_size.labels(endpoint)
            m.queue_wait.labels(endpoint)
            m.compute.labels(endpoint)
        card = engine.loaded.card
        self.metrics.model_info.labels(card.name, card.variant, engine.loaded.sha256, str(engine.device)).set(1)
        self.state = "warming_up"
        self._warmup = asyncio.create_task(self._warm_up(started), name="fersnet-warmup")

    async def _warm_up(self, started: float) -> None:
        assert self.engine is not None
        try:
            await self.compute.run(self.engine.warm_up)
            if self.detector is not None:
                await anyio.to_thread.run_sync(self.detector.warm_up)
        except Exception as e:  # a broken device: stay alive to say so, never report ready
            log.exception("warm-up failed")
            self.failure = f"warm-up failed: {e}"
            self.state = "failed"
            return
        if self.state != "warming_up":  # stop() came first
            return
        self.metrics.model_load.set(time.monotonic() - started)
        self.update_gpu_memory()
        self.state = "ready"
        self.metrics.ready.set(1)
        log.info("ready after %.2fs", time.monotonic() - started)

    async def wait_warm(self) -> None:
        """Return once warm-up has finished (ready or failed)."""
        if self._warmup is not None:
            await asyncio.shield(self._warmup)

    async def stop(self) -> None:
        """Stop taking work, answer everything already accepted, then free the device."""
        self.state = "stopping"
        self.metrics.ready.set(0)
        if self._warmup is not None:
            await self._warmup  # warm-up runs on the compute thread; let it finish rather than abandon it
        for batcher in (self.classifier, self.synthesizer):
            if batcher is not None:
                await batcher.stop()
        await anyio.to_thread.run_sync(self.compute.close)
        log.info("stopped")

    # ------------------------------------------------------------------ checks used by the routes

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def require_ready(self) -> Engine:
        """The engine, or the 503 that says why there is none to use yet."""
        if self.state == "ready" and self.engine is not None:
            return self.engine
        retry = self.settings.retry_after_s
        if self.state == "stopping":
            raise ShuttingDown("the service is shutting down", retry_after_s=retry)
        if self.state == "failed":
            raise NotReady(self.failure or "the model failed to start")
        raise NotReady("the model is still loading or warming up", retry_after_s=retry)

    def require_previewer(self) -> Previewer:
        """The previewer, once the service is ready (503 before, as for every endpoint that reads uploads)."""
        self.require_ready()
        assert self.previewer is not None  # start() made it before the service could be ready
        return self.previewer

    def update_gpu_memory(self) -> None:
        if self.engine is not None:
            for kind, value in self.engine.memory_stats().items():
                self.metrics.gpu_memory.labels(kind).set(value)

"""Prometheus metrics of the service: one registry, every name in one place.

The Grafana dashboard (docker/grafana/dashboards/) and the Kubernetes
autoscaler query these names; tests check that every name they use is
exported here.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServiceMetrics:
    """All metrics of one app instance, on a private registry (so tests can build many apps)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("fersnet_requests", "HTTP requests by route and status code (499: the client left before its answer)",
                                ["route", "method", "status"], registry=r)
        self.request_latency = Histogram(
            "fersnet_request_latency_seconds", "Time from request received to response sent", ["route"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.queue_wait = Histogram(
            "fersnet_queue_wait_seconds", "Time an image waited in the batching queue", ["endpoint"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.compute = Histogram(
            "fersnet_compute_seconds", "Time of one batched forward pass", ["endpoint"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.batch_size = Histogram("fersnet_batch_size", "Images per forward pass", ["endpoint"], buckets=BATCH_BUCKETS, registry=r)
        self.queue_depth = Gauge("fersnet_queue_depth", "Images waiting in the batching queue", ["endpoint"], registry=r)
        self.images = Counter("fersnet_images", "Images (face crops) run through the model", ["endpoint"], registry=r)
        self.faces = Counter("fersnet_faces", "Faces found by the detector", ["endpoint"], registry=r)
        self.model_load = Gauge("fersnet_model_load_seconds", "Seconds spent loading and warming up the model", registry=r)
        self.ready = Gauge("fersnet_ready", "1 once the model is loaded and warmed up, else 0", registry=r)
        self.gpu_memory = Gauge("fersnet_gpu_memory_bytes", "CUDA memory held by the model process", ["kind"], registry=r)
        self.inflight = Gauge("fersnet_inflight_requests", "Inference requests admitted and not yet answered", registry=r)
        self.decoded_pixels = Gauge("fersnet_decoded_pixels", "Decoded pixels leased by requests in flight (the pixel budget in use)", registry=r)
        self.refused = Counter(
            "fersnet_refused", "Requests refused before any work, by reason (inflight: admission limit; pixels: pixel budget)",
            ["reason"], registry=r,
        )
        for reason in ("inflight", "pixels"):
            self.refused.labels(reason)
        self.model_info = Gauge("fersnet_model_info", "The served model (value is always 1)", ["name", "variant", "sha256", "device"], registry=r)


#: Metric names as Prometheus exposes them (counters gain ``_total``; histograms ``_bucket``, ``_sum``, ``_count``).
EXPORTED_NAMES: frozenset[str] = frozenset({
    "fersnet_requests_total",
    "fersnet_request_latency_seconds",
    "fersnet_queue_wait_seconds",
    "fersnet_compute_seconds",
    "fersnet_batch_size",
    "fersnet_queue_depth",
    "fersnet_images_total",
    "fersnet_faces_total",
    "fersnet_model_load_seconds",
    "fersnet_ready",
    "fersnet_gpu_memory_bytes",
    "fersnet_model_info",
    "fersnet_inflight_requests",
    "fersnet_decoded_pixels",
    "fersnet_refused_total",
})

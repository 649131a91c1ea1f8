"""Every knob of the service, read once from ``FERSNET_*`` environment variables.

One :class:`Settings` object is built at start-up (``python -m service`` lets
its command-line options override the environment) and handed to
:func:`service.app.create_app`; nothing else in the service reads the
environment. Lists such as ``FERSNET_CORS_ORIGINS`` accept either JSON
(``["https://a.example"]``) or comma-separated text (``https://a.example,https://b.example``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from model_core import registry

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["float16", "bfloat16", "float32"]
CpuPrecision = Literal["auto", "bfloat16", "float32"]
LogLevel = Literal["critical", "error", "warning", "info", "debug"]

MiB = 1024 * 1024


def _split_list(value: Any) -> Any:
    """Let list settings come as comma-separated text as well as JSON."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Configuration of one service process (env prefix ``FERSNET_``)."""

    model_config = SettingsConfigDict(env_prefix="FERSNET_", extra="ignore", validate_default=True)

    # ------------------------------------------------------------------ model
    checkpoint: str = Field(
        registry.DEFAULT,
        description="Checkpoint folder (or its card.json / model.safetensors), or the name of a checkpoint bundled in "
        f"model_core/weights: {registry.describe()}.",
    )
    prior: Literal["natural", "balanced"] | None = Field(  # model_core.prior.PriorName, spelt out: that module loads torch
        None,
        description="The class prior /v1/classify assumes when a request names none: 'natural' (the training data's "
        "class frequencies) or 'balanced' (every expression equally likely). Unset: the model card's default.",
    )
    device: Device = Field("auto", description="Where the model runs: 'auto' picks CUDA when a GPU is present, else the CPU.")
    precision: Precision = Field("float16", description="Weights and activations dtype on CUDA (see cpu_precision for the CPU).")
    cpu_precision: CpuPrecision = Field(
        "auto",
        description="Dtype on the CPU: 'auto' is bfloat16 where the CPU computes it natively (AVX512-BF16 or AMX; about 1.5-2x "
        "float32, same predictions on FER2013's test split but for a few borderline faces: bench/precision.py), else float32.",
    )
    channels_last: bool | None = Field(
        None, description="Channels-last memory layout for the convolutions; unset: on the CPU (faster with oneDNN), not on CUDA."
    )
    torch_threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads for PyTorch's intra-op parallelism; unset keeps PyTorch's default (all cores). "
        "Set it to the container's CPU limit, or 1 when other CPU-heavy processes share the machine.",
    )

    # ------------------------------------------------------------------ batching
    max_batch_size: int = Field(32, ge=1, le=1024, description="Most images (face crops) in one forward pass.")
    max_wait_ms: float = Field(
        10.0, ge=0, le=10_000, description="Longest an image waits for others to join its batch, counted from the first image's arrival."
    )
    batch_sizes: Annotated[list[int] | None, NoDecode] = Field(
        None,
        description="Fixed batch shapes a batch is padded up to (warm-up runs each). Unset: powers of two up to "
        "max_batch_size on CUDA, no padding on the CPU.",
    )
    max_queue: int = Field(512, ge=1, description="Images allowed to wait per endpoint; beyond it requests get 429.")
    max_inflight_requests: int = Field(
        64,
        ge=1,
        description="Inference requests (both endpoints) being received, decoded, queued, run or encoded at once, counted from "
        "arrival; one more is refused at once with 429 and Retry-After, before its body is read. Past a few batches' worth "
        "more requests in flight add latency, not throughput.",
    )
    retry_after_s: int = Field(1, ge=0, description="Seconds suggested by Retry-After on 429 and 503 answers.")
    request_timeout_s: float = Field(30.0, gt=0, description="A request still unanswered after this many seconds gets 504.")
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Seconds a request body may take to arrive, counted from the request's arrival; still arriving then: 408 "
        "and the connection closed. Until then the request holds its place among max_inflight_requests, so a client that "
        "stalls mid-upload cannot keep the others out for long (16 MiB in 30 s needs about 4.5 Mbit/s).",
    )

    # ------------------------------------------------------------------ uploads
    max_upload_bytes: int = Field(16 * MiB, ge=1024, description="Largest request body in bytes (413 beyond).")
    max_image_pixels: int = Field(
        40_000_000, ge=64, description="Largest image in pixels (width x height), checked from the header before decoding (413 beyond)."
    )
    max_request_pixels: int = Field(
        256_000_000,
        ge=64,
        description="Most pixels one request may decode, summed over its images and read from their headers before any is "
        "decoded (413 beyond). Large JPEGs count at the reduced scale they decode at.",
    )
    max_inflight_pixels: int = Field(
        160_000_000,
        ge=64,
        description="Most decoded pixels all requests may hold at once (each request: its largest image, decoded one at a "
        "time, plus the reduced photos it keeps); a request that does not fit now gets 429 before decoding. About 3-4 bytes "
        "per pixel: 160 M pixels is roughly 0.5-0.7 GB.",
    )
    max_images_per_request: int = Field(16, ge=1, description="Most images in one /v1/classify request (413 beyond).")
    max_faces_per_image: int = Field(16, ge=1, description="Most faces kept per photo (the largest ones).")
    detect_confidence: float = Field(0.5, gt=0, lt=1, description="YuNet score a detection needs to count as a face.")
    decode_workers: int = Field(4, ge=1, description="Threads that decode images and run the face detector concurrently.")

    # ------------------------------------------------------------------ HTTP
    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0 in a container).")
    port: int = Field(8000, ge=0, le=65535, description="TCP port.")
    api_key: SecretStr | None = Field(
        None, description="When set, /v1/* requires it in the X-API-Key header (or 'Authorization: Bearer <key>')."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins allowed to call from a browser ('*' for any); empty turns CORS off."
    )
    log_level: LogLevel = Field("info", description="Log level of the service and uvicorn.")
    shutdown_timeout_s: float = Field(
        30.0, ge=0, description="On SIGTERM, how long in-flight requests get to finish before the server closes."
    )

    @field_validator("checkpoint")
    @classmethod
    def _bundled_name_is_known(cls, value: str) -> str:
        """A misspelt bundled name fails with the settings, not minutes later when the model loads."""
        registry.bundled_name(value)  # ValueError (naming the bundled ones) for a bare name that is neither
        return value

    @field_validator("batch_sizes", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: Any) -> Any:
        """FERSNET_API_KEY= (empty) means no key, not a key that is the empty string."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_log_level(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_batch_sizes(self) -> Settings:
        if self.batch_sizes is not None:
            sizes = sorted(set(self.batch_sizes))
            if not sizes or sizes[0] < 1:
                raise ValueError("batch_sizes must be positive integers")
            if sizes[-1] < self.max_batch_size:
                raise ValueError(f"the largest of batch_sizes ({sizes[-1]}) must be at least max_batch_size ({self.max_batch_size})")
            self.batch_sizes = [s for s in sizes if s < self.max_batch_size] + [self.max_batch_size]
        return self

    @property
    def max_wait_s(self) -> float:
        return self.max_wait_ms / 1000.0

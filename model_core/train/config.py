"""Training configuration: one validated object, read from a YAML recipe.

Recipes live in ``training/configs/``. Paths inside a recipe are relative to
the directory ``fersnet train`` runs in (the project root). Any field can be
overridden on the command line: ``--set optim.epochs=2 --set seed=1``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..data import DatasetName, Records, load_records
from ..fersnet import FERSNetConfig, SharingMode, list_variants


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSpec(_Strict):
    """One split of one dataset."""

    dataset: DatasetName
    root: str
    split: str
    label_mode: Literal["hard", "soft"] = "hard"
    folds: int = 10
    skip_bad: bool = False
    teacher: str | None = None
    """A teacher-targets CSV (``fersnet teacher-targets``): its probabilities are mixed into each face's
    target, ``(1 - teacher_weight) * label + teacher_weight * teacher`` (offline distillation)."""
    teacher_weight: float = Field(0.5, ge=0, le=1)

    def options(self) -> dict[str, Any]:
        return {"label_mode": self.label_mode, "folds": self.folds, "skip_bad": self.skip_bad}

    def load(self) -> Records:
        """The split's records, read as this spec says (label mode, folds, bad files): the one way a recipe reads data."""
        return load_records(self.dataset, self.root, self.split, **self.options())

    def describe(self) -> str:
        soft = " (vote distributions)" if self.label_mode == "soft" else ""
        taught = f" + {self.teacher_weight:g} x teacher {self.teacher}" if self.teacher else ""
        return f"{self.dataset}:{self.split}{soft} from {self.root}{taught}"


class ModelSpec(_Strict):
    variant: str = "fersnet_small"
    sharing: SharingMode = "selective"
    overrides: dict[str, Any] = Field(default_factory=dict)
    classes: list[str] | None = None
    """The model's output classes; default: the first training dataset's classes."""
    frozen: list[str] = Field(default_factory=list)
    """Submodules held fixed, by name (``stem``, ``fer_stages``, ``gates``, ``head``, ...): their weights get no
    updates and their batch-norm statistics no new batches. Freezing everything but ``embedding`` and
    ``decoder`` retrains the generator while the recogniser answers exactly as before."""

    @field_validator("variant")
    @classmethod
    def _registered(cls, v: str) -> str:
        if v not in list_variants():
            raise ValueError(f"unknown variant {v!r}; registered: {', '.join(list_variants())}")
        return v

    @field_validator("overrides")
    @classmethod
    def _config_fields(cls, v: dict[str, Any]) -> dict[str, Any]:
        """Each override must name a field of :class:`~model_core.fersnet.FERSNetConfig` (checked here, not when the
        model is built minutes later)."""
        known = {f.name for f in dataclasses.fields(FERSNetConfig)} - {"variant"}
        if unknown := sorted(set(v) - known):
            raise ValueError(f"not a network setting: {', '.join(unknown)}; the settings: {', '.join(sorted(known))}")
        return v
    init_from: str | None = None
    """A checkpoint whose matching tensors initialise the model (pretraining, fine-tuning);
    tensors indexed by class are matched by class name (see :mod:`model_core.transfer`)."""
    init_fresh: list[str] = Field(default_factory=list)
    """Submodules, by name, that ``init_from`` leaves at their initialisation: ``[embedding, decoder]`` trains a
    new generator on a checkpoint's recogniser instead of fine-tuning the generator it has."""

    @model_validator(mode="after")
    def _fresh_needs_a_start(self) -> ModelSpec:
        if self.init_fresh and not self.init_from:
            raise ValueError("init_fresh names submodules that init_from leaves fresh; without init_from every one is")
        return self


class OptimSpec(_Strict):
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    lr_d: float = 2e-4
    betas_d: tuple[float, float] = (0.5, 0.999)
    """The discriminator's Adam betas: a low first moment, as GANs are usually trained."""
    grad_clip: float | None = 5.0


class LossSpec(_Strict):
    """Weights of the multi-task objective (see :mod:`model_core.train.losses` for why each exists)."""

    fer: float = 1.0
    label_smoothing: float = 0.1
    adversarial: float = 1.0
    classification: float = 1.0
    cycle: float = 10.0
    identity: float = 5.0
    mask: float = 0.1
    """A masked decoder only: weight of the mask's mean (redraw as little of the face as the expression needs)."""
    mask_smooth: float = 1.0
    """A masked decoder only: weight of the mask's total variation (smooth regions, not speckles)."""
    synthesis_fraction: float = Field(0.25, gt=0, le=1)
    """Share of each batch that is also synthesised; the rest only trains recognition."""
    critics: list[str] = Field(default_factory=list)
    """Frozen classifiers (checkpoint or teacher folders) that judge each fake beside the model's own FER branch;
    the classification loss is the mean of all their verdicts. A generator that must convince networks it shares
    no weights with has to draw the expression, not a pattern that only its own recogniser reads."""
    judge_jitter: bool = False
    """Judge each fake through a random mirror, small rotation, scale and shift (bilinear, so also slightly
    blurred), a fresh draw per face and step: the expectation-over-transformation defence of Athalye et al.
    (2018). A faint pixel pattern that fools a frozen judge rarely survives resampling; a drawn smile does."""
    judge_blur: float = Field(0.0, ge=0)
    """With ``judge_jitter``: also blur each judged copy, by a Gaussian of a random width up to this many pixels
    (sigma). Streaks and speckles a pixel or two wide then stop paying; a mouth or a brow survives the blur."""
    change_smooth: float = Field(0.0, ge=0)
    """Weight of the total variation of the change (fake minus input): an edit made of smooth regions, not of
    streaks. The mask's own smoothness (``mask_smooth``) leaves the decoder free to paint streaks where the mask
    is open; this term prices them wherever they are."""

    @model_validator(mode="after")
    def _blur_needs_jitter(self) -> LossSpec:
        if self.judge_blur > 0 and not self.judge_jitter:
            raise ValueError("judge_blur blurs the judges' moved copies, so it needs judge_jitter: true")
        return self

    @property
    def trains_synthesis(self) -> bool:
        """False when every synthesis weight is 0: recognition-only fine-tuning skips the FES work."""
        return any(w > 0 for w in (self.adversarial, self.classification, self.cycle, self.identity))


class DiscriminatorSpec(_Strict):
    """The PatchGAN that judges realism (:mod:`model_core.discriminator`)."""

    width: int = Field(64, ge=8)
    spectral_norm: bool = False
    """Spectral normalisation of every convolution (Miyato et al., 2018): bounds how fast the judge's verdict
    can change, which keeps adversarial training stable; it replaces instance norm."""


class TrainConfig(_Strict):
    name: str
    out_dir: str | None = None
    """Where checkpoints, logs and figures go; default ``runs/<name>``."""
    seed: int = 0
    model: ModelSpec = Field(default_factory=ModelSpec)
    train: list[DataSpec]
    val: DataSpec | None = None
    report: list[DataSpec] = Field(default_factory=list)
    """Splits measured once, on the selected model, after training (test splits go here, never in ``val``)."""
    optim: OptimSpec = Field(default_factory=OptimSpec)
    loss: LossSpec = Field(default_factory=LossSpec)
    discriminator: DiscriminatorSpec = Field(default_factory=DiscriminatorSpec)
    augment: float = 1.0
    select: Literal["accuracy", "macro_f1", "last"] = "accuracy"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True
    """bfloat16 autocast on CUDA."""
    cpu_bf16: bool = True
    """bfloat16 autocast on a CPU that computes it natively (AVX-512 BF16, AMX); elsewhere nothing changes.
    On 2 AMD EPYC cores it trains FERSNet-small's whole multi-task step 1.48x faster (``python -m
    bench.train_speed``) and the recipe ``fer2013_small.yaml`` 1.43x, with the same validation accuracy
    on a short run at the same seed (docs/results.md, "Training speed on the CPU")."""
    channels_last: bool = True
    num_workers: int = 2
    threads: int | None = None
    max_steps_per_epoch: int | None = None
    time_budget_s: float | None = Field(None, gt=0)
    """Wall-clock seconds the training loop may take. The first two epochs (validation and checkpoint
    included) are timed and the run is cut to the epochs that fit, the cosine schedule spread over them:
    for leased accelerators with a hard time limit, where an unfinished run would be lost. None: run
    every epoch of the recipe."""
    progress: bool = True
    figures: bool = True
    """Draw curves, confusion matrices and a synthesis grid beside the checkpoint at the end."""

    @field_validator("train")
    @classmethod
    def _some_training_data(cls, v: list[DataSpec]) -> list[DataSpec]:
        if not v:
            raise ValueError("at least one training split is needed")
        return v

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir or f"runs/{self.name}")


class ConfigError(Exception):
    """A recipe that cannot be read or does not validate; the message names the file and field."""


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in nested mappings; a number indexes a list (``train.0.teacher_weight``)."""
    keys = dotted.split(".")
    node: Any = data
    for i, key in enumerate(keys):
        slot: str | int = key
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ConfigError(f"--set {dotted}: {key} is not an index of a list of {len(node)}")
            slot = int(key)
        elif not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: {keys[i - 1]} is not a section")
        if i == len(keys) - 1:
            node[slot] = value
        else:
            node = node.setdefault(slot, {}) if isinstance(node, dict) else node[slot]


def _one_line(error: yaml.YAMLError) -> str:
    """A YAML error's several lines (problem, where, context) as one."""
    return " ".join(str(error).split())


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML recipe, apply ``key.path=value`` overrides (values parsed as YAML), validate."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as file:  # read from the file, so a YAML error's mark names it
            data = yaml.safe_load(file) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a folder, not a config file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (UTF-8 YAML expected)") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({_one_line(e)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected key.path=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({_one_line(e)})") from None
        _set_path(data, key.strip(), value)
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
                             for err in e.errors())
        raise ConfigError(f"{path}: {problems}") from None

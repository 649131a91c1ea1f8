"""The teacher classifiers: a few different architectures for 48x48 grey faces, saved and loaded one way.

An ensemble gains most from members that err differently, so the teachers
differ in architecture, not only in seed:

``vgg``
    FERSNet's recognition branch alone (``sharing: none``) at VGG widths for 48
    pixels (64, then 128-256-256-512; 7.1 M parameters, 0.83 GFLOPs a face).
``paper48``
    the paper's network, recognition only, 256 channels throughout at 48 pixels
    (6.5 M parameters but 4.5 GFLOPs: full resolution at full width).
``small``
    the default model's network, recognition only (1.8 M, 0.11 GFLOPs).
``resnet18``
    a ResNet-18 with a CIFAR-style stem (one 3x3 convolution, no pooling, so
    48 pixels become 6x6 after three stride-2 stages; 11.2 M, 2.5 GFLOPs).
``small_selective``
    the default model's whole network (selective sharing, masked decoder), trained on recognition alone: a
    distillation student from scratch.
``tiny``
    fersnet_tiny, for tests.

A distillation student can also start from a saved FERSNet (:func:`student_of`), the bundled default say.

The FERSNet ones are saved as ordinary checkpoints (``card.json`` beside
``model.safetensors``), so ``fersnet evaluate``, ``teacher-targets`` and
``serve`` take them like any other; a ResNet gets ``teacher.json`` instead.
:func:`load_teacher` reads either.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ..checkpoint import CARD_FILE, WEIGHTS_FILE, build_card, load_checkpoint, save_checkpoint
from ..data import DataError
from ..expressions import FER2013_CLASSES
from ..fersnet import FERSNet, create_model
from ..preprocess import Preprocess
from ..transfer import without_answer_tail

TEACHER_FILE = "teacher.json"
IMG_SIZE = 48


class FERClassifier(nn.Module):
    """A FERSNet seen as a plain classifier: ``forward`` gives logits, as every teacher's does."""

    def __init__(self, fersnet: FERSNet, preprocess: Preprocess | None = None) -> None:
        super().__init__()
        self.fersnet = fersnet
        #: How its faces are framed and normalised (the card's); None: the teachers' plain 48-pixel input.
        self.preprocess = preprocess

    def forward(self, images: Tensor) -> Tensor:
        return self.fersnet.recognise(images)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut: ResNet-18's unit."""

    def __init__(self, in_chans: int, out_chans: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, out_chans, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chans)
        self.conv2 = nn.Conv2d(out_chans, out_chans, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chans)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_chans != out_chans:
            self.shortcut = nn.Sequential(nn.Conv2d(in_chans, out_chans, 1, stride, bias=False), nn.BatchNorm2d(out_chans))

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet with a 3x3 stem and no max-pool: small faces keep their resolution into the first stage."""

    def __init__(self, blocks: tuple[int, ...] = (2, 2, 2, 2), width: int = 64, in_chans: int = 1,
                 num_classes: int = len(FER2013_CLASSES), dropout: float = 0.2) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_chans, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        chans = width
        for i, n in enumerate(blocks):
            out = width * 2**i
            for j in range(n):
                layers.append(BasicBlock(chans, out, 2 if i > 0 and j == 0 else 1))
                chans = out
        self.layers = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(chans, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():  # each block starts as the identity: steadier at a high learning rate
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, images: Tensor) -> Tensor:
        features = self.layers(self.stem(images)).mean(dim=(2, 3))
        return self.fc(self.dropout(features))


def _fersnet(variant: str, sharing: str = "none", **overrides: Any) -> Callable[[], nn.Module]:
    return lambda: FERClassifier(create_model(variant, sharing=sharing, img_size=IMG_SIZE, **overrides))


#: Every teacher architecture by name; each builds a fresh 48x48 grey, 7-class (FER2013) classifier.
ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {
    "vgg": _fersnet("fersnet_paper", stem_width=64, widths=(128, 256, 256, 512), head_width=256, last_stage_pool=False),
    "paper48": _fersnet("fersnet_paper", last_stage_pool=False),
    "small": _fersnet("fersnet_small"),
    "small_selective": _fersnet("fersnet_small", sharing="selective", synthesis_output="masked"),
    "resnet18": lambda: ResNet(),
    "tiny": _fersnet("fersnet_tiny"),
}


def student_of(checkpoint: str | Path) -> FERClassifier:
    """A saved FERSNet (the bundled default, say) as a classifier to train further: the whole network is kept,
    synthesis decoder included, so the student is again a complete checkpoint that ``init_from`` can take.

    An answer tail is dropped (:func:`~model_core.transfer.without_answer_tail`): the student learns FER2013's
    labels through the expression head, its trunk moves, and a tail fitted on the old trunk would no longer fit."""
    loaded = load_checkpoint(checkpoint)
    return FERClassifier(without_answer_tail(loaded.model).float().requires_grad_(True), loaded.preprocess)


def build_teacher(arch: str) -> nn.Module:
    try:
        return ARCHITECTURES[arch]()
    except KeyError:
        raise KeyError(f"unknown teacher architecture {arch!r}; known: {', '.join(ARCHITECTURES)}") from None


def save_teacher(folder: str | Path, model: nn.Module, arch: str, info: dict[str, Any]) -> Path:
    """Write the weights in float16 (half the bytes; a lease brings back 64 MiB) and what they are.

    ``info`` (how it was trained and what it scored) goes into the card or teacher.json.
    """
    folder = Path(folder)
    if isinstance(model, FERClassifier):
        card = build_card(model.fersnet, FER2013_CLASSES, model.preprocess or Preprocess(img_size=IMG_SIZE), name=info.get("name"),
                          training=info.get("training"), metrics=info.get("metrics"))
        card.teacher = {"arch": arch}
        return save_checkpoint(folder, model.fersnet, card, half=True)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.detach().half() if v.is_floating_point() else v.detach()).cpu().contiguous()
               for k, v in model.state_dict().items()}
    save_file(tensors, str(folder / WEIGHTS_FILE))
    spec = {"arch": arch, "classes": list(FER2013_CLASSES), "input": Preprocess(img_size=IMG_SIZE).to_dict(), **info}
    (folder / TEACHER_FILE).write_text(json.dumps(spec, indent=2) + "\n")
    return folder


def load_teacher(folder: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """A saved teacher in eval mode, whichever way it was saved."""
    folder = Path(folder)
    if (folder / CARD_FILE).is_file():
        loaded = load_checkpoint(folder, device)
        return FERClassifier(loaded.model, loaded.preprocess).eval()
    spec = json.loads((folder / TEACHER_FILE).read_text())
    model = build_teacher(spec["arch"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in load_file(str(folder / WEIGHTS_FILE)).items()})
    return model.to(device).eval()


def load_critic(folder: str | Path, classes: tuple[str, ...], img_size: int,
                device: str | torch.device = "cpu") -> nn.Module:
    """A saved classifier (either kind of teacher, or any checkpoint) frozen to judge a generator's faces.

    It must answer in ``classes``' order and read faces of ``img_size`` pixels, as the model whose fakes it
    judges does; anything else is refused by name rather than scored wrongly.
    """
    folder = Path(folder)
    if (folder / CARD_FILE).is_file():
        loaded = load_checkpoint(folder, device)
        theirs, size = loaded.classes, loaded.preprocess.img_size
        model: nn.Module = FERClassifier(loaded.model, loaded.preprocess)
    elif (folder / TEACHER_FILE).is_file():
        spec = json.loads((folder / TEACHER_FILE).read_text())
        theirs, size = tuple(spec["classes"]), int(spec["input"]["img_size"])
        model = load_teacher(folder, device)
    else:
        raise DataError(f"{folder}: not a checkpoint or teacher folder (no {CARD_FILE} or {TEACHER_FILE})")
    if tuple(theirs) != tuple(classes) or size != img_size:
        raise DataError(f"{folder}: a critic must read {img_size}-pixel faces and answer in {list(classes)}; "
                        f"it reads {size}-pixel faces and answers in {list(theirs)}")
    return model.to(device).eval().requires_grad_(False)


def load_critics(folders: list[str], classes: tuple[str, ...], img_size: int,
                 device: str | torch.device = "cpu") -> tuple[nn.Module, ...]:
    """Every critic a recipe names (``loss.critics``), frozen, on ``device``."""
    return tuple(load_critic(f, classes, img_size, device) for f in folders)

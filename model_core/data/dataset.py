"""Decoded, label-mapped face datasets for PyTorch.

:class:`FaceDataset` decodes every image of a :class:`Records` split once, up
front, through the model's :class:`~model_core.preprocess.Preprocess`, and
keeps them as one uint8 array at the model's input size (FER2013's 35,887
faces take 83 MB). Decoding up front means a corrupt file stops the run at
the start, with its name, rather than hours in; and it makes epochs cheap on
a CPU. Labels are re-indexed from the dataset's classes onto the model's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor
from torch.utils.data import Dataset

from ..expressions import index_map
from ..image_formats import DECODE_ERRORS, READ_FORMATS, oversized, unreadable_file
from ..preprocess import Preprocess, viewable
from .records import DataError, Record, Records

#: Finds the face in a decoded image and returns its crop, or None when there is none
#: (:class:`model_core.faces.LargestFace`).
FaceFinder = Callable[[Image.Image], Image.Image | None]


def decode(record: Record, preprocess: Preprocess, find_face: FaceFinder | None = None) -> tuple[np.ndarray, bool]:
    """One record's image, prepared for the model, as an HxW or HxWxC uint8 array.

    With ``find_face`` the image is first replaced by its face crop; the flag
    says whether a face was found (an image without one is prepared whole).
    """
    try:
        if record.pixels is not None:
            image = Image.fromarray(record.pixels)
        else:
            if too_large := oversized(record.source, os.path.getsize(record.source)):  # a video among the pictures
                raise DataError(too_large)
            # Only the formats the project reads; upright as a viewer shows it (a phone photo's EXIF orientation),
            # as the service decodes uploads.
            with Image.open(record.source, formats=READ_FORMATS) as f:
                image = viewable(ImageOps.exif_transpose(f))
    except FileNotFoundError:
        raise DataError(f"{record.source}: file missing") from None
    except DECODE_ERRORS as e:
        raise DataError(unreadable_file(record.source, e)) from None
    face = find_face(image) if find_face is not None else None
    return np.asarray(preprocess.prepare(face if face is not None else image)), face is not None


class FaceDataset(Dataset[tuple[Tensor, int, Tensor]]):
    """Items are ``(image, label, target)``: the normalised image, the model-class index, and a
    label distribution over the model's classes (one-hot for hard labels, votes for FER+;
    either mixed with a teacher's probabilities when one is given)."""

    def __init__(
        self,
        records: Records,
        preprocess: Preprocess,
        classes: Sequence[str] | None = None,
        augment: Callable[[Tensor], Tensor] | None = None,
        skip_bad: bool = False,
        drop_unknown_labels: bool = False,
        teacher: Mapping[str, np.ndarray] | None = None,
        teacher_weight: float = 0.0,
        find_face: FaceFinder | None = None,
    ) -> None:
        """``teacher`` maps a record's source to a teacher's probabilities over ``classes``
        (see :mod:`model_core.train.teacher`); each target becomes
        ``(1 - teacher_weight) * label + teacher_weight * teacher``.

        ``find_face`` (photos rather than crops) replaces each image by its face crop
        before it is prepared; the sources where it found none, prepared whole, are
        listed in ``faceless`` (None without ``find_face``)."""
        self.preprocess = preprocess
        self.augment = augment
        self.classes = tuple(classes or records.classes)
        self.dataset_classes = records.classes
        self.skipped = list(records.skipped)
        self.faceless: list[str] | None = [] if find_face is not None else None
        mapping = index_map(records.classes, self.classes)

        kept: list[Record] = []
        images: list[np.ndarray] = []
        labels: list[int] = []
        targets: list[np.ndarray] = []
        for record in records.records:
            if record.label not in mapping:
                if not drop_unknown_labels:
                    raise DataError(
                        f"{record.source}: label {records.classes[record.label]!r} is not among the model's classes "
                        f"{self.classes}; the model cannot learn it"
                    )
                self.skipped.append((record.source, f"label {records.classes[record.label]!r} not in model classes"))
                continue
            target = np.zeros(len(self.classes), dtype=np.float32)
            if record.votes is None:
                target[mapping[record.label]] = 1.0
            else:
                for i, v in enumerate(record.votes):
                    if i in mapping:
                        target[mapping[i]] += v
                target /= target.sum()
            if teacher is not None:
                # float32 as the one-hot and vote targets (a float64 teacher would otherwise promote this one)
                target = ((1 - teacher_weight) * target + teacher_weight * teacher[record.source]).astype(np.float32, copy=False)
            try:
                image, face_found = decode(record, preprocess, find_face)
            except DataError as e:
                records.skip_or_raise(record.source, str(e).split(": ", 1)[-1], skip_bad)
                self.skipped.append(records.skipped[-1])
                continue
            if self.faceless is not None and not face_found:
                self.faceless.append(record.source)
            images.append(image)
            kept.append(record)
            labels.append(mapping[record.label])
            targets.append(target)
        if not kept:
            raise DataError(f"{records.dataset}/{records.split}: no usable images")
        self.records = kept
        self.images = np.stack(images)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.targets = np.stack(targets)

    def __len__(self) -> int:
        return len(self.records)

    def image_uint8(self, index: int) -> Tensor:
        array = self.images[index]
        array = array if array.ndim == 3 else array[:, :, None]
        return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)

    def __getitem__(self, index: int) -> tuple[Tensor, int, Tensor]:
        image = self.image_uint8(index)
        if self.augment is not None:
            image = self.augment(image)
        return self.preprocess.to_tensor(image), int(self.labels[index]), torch.from_numpy(self.targets[index])

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.classes))
        return dict(zip(self.classes, counts.tolist(), strict=True))

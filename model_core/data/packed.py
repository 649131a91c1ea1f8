"""FER2013 (and FER+'s votes) packed into one compressed file, for a machine that cannot see the datasets.

A remote GPU host receives the working tree and at most 64 MiB beside it, and the
datasets are not in the tree. FER2013's 35,887 faces decoded take 83 MB, and
deflate shrinks decoded faces little; the JPEG files themselves are the most
compact lossless record of the pixels the loaders see (56.5 MB), and deflated
together (their headers repeat) they take 44.8 MB. So the pack keeps each
JPEG's bytes unchanged, with the key the teacher-targets files use for it (its
path under the dataset root), its split and label, and :func:`load_packed`
decodes them through the same :class:`~model_core.preprocess.Preprocess` path
as :class:`~model_core.data.FaceDataset`.

FER+ relabels the same faces, but names them by their row in Kaggle's CSV
(``fer0000123.png``), which the image-folder copy of FER2013 does not keep. The
packer finds each FER+ face's FER2013 file by its pixels (FER+'s PNGs are the
original pixels, the JPEGs a lossy copy of them), within the matching split,
and stores that index with FER+'s majority-vote label; a model scored on the
pack scores FER+ on the JPEG of each face. Nothing here is committed: the pack
holds dataset images (``.carry/`` is ignored by git).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from PIL import Image, ImageOps

from ..expressions import FER2013_CLASSES, FERPLUS_CLASSES
from ..preprocess import Preprocess, viewable
from .dataset import decode
from .records import DataError

PACK_FORMAT = 1
#: Split codes of the pack, in FER2013's order: Training, PublicTest, PrivateTest.
SPLITS = ("train", "val", "test")
_FER2013_USAGE = {"Training": 0, "PublicTest": 1, "PrivateTest": 2}
_FERPLUS_FOLDER = {"FER2013Train": 0, "FER2013Valid": 1, "FER2013Test": 2}
_PREPROCESS = Preprocess(img_size=48, in_chans=1)


def evenly(rows: np.ndarray, count: int) -> np.ndarray:
    """``count`` of ``rows`` (all of them if fewer), evenly spread: the pack is sorted by class, so each keeps its share."""
    return rows[np.unique(np.linspace(0, len(rows) - 1, min(count, len(rows))).astype(int))]


@dataclass
class PackedFaces:
    """Decoded faces of a pack: ``images`` is N x 48 x 48 uint8 (what FaceDataset holds), one row per key."""

    keys: list[str]
    split: np.ndarray  # int8, index into SPLITS
    label: np.ndarray  # int64, index into ``classes``
    images: np.ndarray
    classes: tuple[str, ...]
    #: FER+ (None where the pack has none): keys under the FER+ root, the FER2013 row each face is,
    #: its split, and its majority-vote label over FERPLUS_CLASSES (-1 where FER+ drops it: a tie).
    ferplus_keys: list[str] | None = None
    ferplus_classes: tuple[str, ...] = FERPLUS_CLASSES
    ferplus_match: np.ndarray | None = None
    ferplus_split: np.ndarray | None = None
    ferplus_label: np.ndarray | None = None
    #: Each face's row in the whole pack, where this is a subset of it (None: it is the whole pack).
    source_rows: np.ndarray | None = None

    def rows(self, split: str) -> np.ndarray:
        """Indices of the FER2013 faces of ``split`` (train, val or test)."""
        return np.flatnonzero(self.split == SPLITS.index(split))

    def subset(self, per_split: int) -> PackedFaces:
        """``per_split`` faces of each split, evenly spread (the pack is sorted by class), and the FER+ faces
        matched to them: for smoke runs."""
        parts = [self.rows(s) for s in SPLITS]
        kept = np.concatenate([evenly(rows, per_split) for rows in parts if len(rows)])
        kept.sort()
        out = PackedFaces([self.keys[i] for i in kept], self.split[kept], self.label[kept],
                          self.images[kept] if len(self.images) else self.images, self.classes,
                          source_rows=kept if self.source_rows is None else self.source_rows[kept])
        if self.ferplus_keys is not None and self.ferplus_match is not None:
            new_index = np.full(len(self.keys), -1)
            new_index[kept] = np.arange(len(kept))
            fp = np.flatnonzero(new_index[self.ferplus_match] >= 0)
            out.ferplus_keys = [self.ferplus_keys[i] for i in fp]
            out.ferplus_classes = self.ferplus_classes
            out.ferplus_match = new_index[self.ferplus_match[fp]]
            out.ferplus_split = None if self.ferplus_split is None else self.ferplus_split[fp]
            out.ferplus_label = None if self.ferplus_label is None else self.ferplus_label[fp]
        return out


@dataclass(frozen=True)
class PackReport:
    path: Path
    bytes: int
    fer2013: int
    ferplus: int
    #: Mean absolute difference (grey levels) between each FER+ face and the FER2013 JPEG it was matched to.
    match_mad_median: float
    match_mad_max: float


def _decode_bytes(data: bytes) -> np.ndarray:
    """One packed image, prepared exactly as :func:`model_core.data.decode` prepares a file."""
    with Image.open(io.BytesIO(data)) as f:
        image = viewable(ImageOps.exif_transpose(f))
    return np.asarray(_PREPROCESS.prepare(image))


def pack(fer2013_root: str | Path, out: str | Path, ferplus_root: str | Path | None = None) -> PackReport:
    """Write FER2013 (every split) and, given ``ferplus_root``, FER+'s labels matched onto it, to ``out`` (.npz)."""
    from ..train.teacher import target_key
    from . import load_records  # the registry imports this module's siblings; import late to keep it a leaf

    fer2013_root = Path(fer2013_root)
    records = load_records("fer2013", fer2013_root, "all").records
    if any(r.pixels is not None for r in records):
        raise DataError(f"{fer2013_root}: pack the image-folder copy of FER2013 (its keys are file paths), not the CSV")
    blobs = [Path(r.source).read_bytes() for r in records]
    keys = [target_key(r.source, fer2013_root) for r in records]
    split = np.array([_FER2013_USAGE[Path(r.source).name.split("_", 1)[0]] for r in records], dtype=np.int8)
    arrays: dict[str, np.ndarray] = {
        "format": np.array(PACK_FORMAT),
        "classes": np.array(FER2013_CLASSES),
        "keys": np.array(keys),
        "split": split,
        "label": np.array([r.label for r in records], dtype=np.int8),
        "jpeg": np.frombuffer(b"".join(blobs), dtype=np.uint8),
        "offsets": np.cumsum([0, *(len(b) for b in blobs)]).astype(np.int64),
    }
    mad = np.zeros(0)
    if ferplus_root is not None:
        pixels = np.stack([decode(r, _PREPROCESS)[0] for r in records])
        arrays |= _ferplus_arrays(Path(ferplus_root), pixels, split)
        mad = arrays.pop("match_mad")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    # cast: numpy's stubs read any **mapping as possibly holding savez's own allow_pickle (a bool); these are arrays.
    np.savez_compressed(tmp, **cast(dict[str, Any], arrays))
    tmp.replace(out)
    return PackReport(out, out.stat().st_size, len(records), len(arrays.get("ferplus_keys", [])),
                      float(np.median(mad)) if mad.size else 0.0, float(mad.max()) if mad.size else 0.0)


def _ferplus_arrays(root: Path, fer2013_pixels: np.ndarray, fer2013_split: np.ndarray) -> dict[str, np.ndarray]:
    """FER+'s keys, splits and majority labels, each face matched to the FER2013 row with the same pixels.

    Every face FER+ keeps for soft labels is listed (so a teacher's probabilities cover them all); the
    hard label is FER+'s majority vote, -1 where the loader's majority rule drops the face (a tie).
    """
    from ..train.teacher import target_key
    from . import load_records

    soft = load_records("ferplus", root, "all", label_mode="soft").records
    hard = {r.source: r.label for r in load_records("ferplus", root, "all", label_mode="hard").records}
    keys = [target_key(r.source, root) for r in soft]
    split = np.array([_FERPLUS_FOLDER[k.split("/", 1)[0]] for k in keys], dtype=np.int8)
    pixels = np.stack([decode(r, _PREPROCESS)[0] for r in soft])
    match, mad = np.zeros(len(soft), dtype=np.int32), np.zeros(len(soft), dtype=np.float32)
    for code in range(len(SPLITS)):
        rows, candidates = np.flatnonzero(split == code), np.flatnonzero(fer2013_split == code)
        if len(rows):
            found, diff = match_faces(pixels[rows], fer2013_pixels[candidates])
            match[rows], mad[rows] = candidates[found], diff
    return {
        "ferplus_classes": np.array(FERPLUS_CLASSES),
        "ferplus_keys": np.array(keys),
        "ferplus_split": split,
        "ferplus_label": np.array([hard.get(r.source, -1) for r in soft], dtype=np.int8),
        "ferplus_match": match,
        "match_mad": mad,
    }


def match_faces(queries: np.ndarray, pool: np.ndarray, shortlist: int = 8, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """For each query face the index of the ``pool`` face with the same pixels, and their mean absolute difference.

    A lossy copy differs from its original by a few grey levels, so an exact comparison fails; every
    query is compared with every pool face at 12x12 (averaged 4x4 blocks, which JPEG noise hardly
    moves), and the ``shortlist`` nearest are compared at full size.
    """
    def coarse(faces: np.ndarray) -> np.ndarray:
        n, h, w = faces.shape
        return faces.reshape(n, h // 4, 4, w // 4, 4).mean(axis=(2, 4), dtype=np.float32).reshape(n, -1)

    q, p = coarse(queries), coarse(pool)
    p_norm = (p * p).sum(1)
    k = min(shortlist, len(pool))
    found = np.zeros(len(queries), dtype=np.int64)
    diff = np.zeros(len(queries), dtype=np.float32)
    for start in range(0, len(queries), chunk):
        block = q[start:start + chunk]
        dist = p_norm[None, :] - 2 * block @ p.T  # + |q|^2, the same for every candidate
        near = np.argpartition(dist, k - 1, axis=1)[:, :k] if k < len(pool) else np.tile(np.arange(len(pool)), (len(block), 1))
        full = np.abs(queries[start:start + chunk, None].astype(np.int16) - pool[near].astype(np.int16)).mean(axis=(2, 3))
        best = full.argmin(1)
        found[start:start + chunk] = near[np.arange(len(block)), best]
        diff[start:start + chunk] = full[np.arange(len(block)), best]
    return found, diff


def unpack(path: str | Path, root: str | Path, per_split: int | None = None) -> int:
    """Write the pack's FER2013 JPEGs back as the image-folder copy under ``root``; return how many.

    Each file gets its bytes unchanged at its key (``train/angry/Training_....jpg``), so ``load_records("fer2013",
    root, ...)`` reads exactly the faces it reads from the original folder: for a host that has the pack but runs a
    recipe that reads folders (``fersnet train``). ``per_split``: that many faces of each split (smoke runs).
    Only FER2013's files are written; FER+'s labels stay in the pack.
    """
    data, root = _read_pack(Path(path)), Path(root)
    keys, jpeg, offsets, split = data["keys"], data["jpeg"].tobytes(), data["offsets"], data["split"]
    rows = np.arange(len(keys))
    if per_split is not None:
        parts = [np.flatnonzero(split == code) for code in range(len(SPLITS))]
        rows = np.concatenate([evenly(part, per_split) for part in parts if len(part)])
    for i in rows:
        target = root / str(keys[i])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(jpeg[offsets[i]:offsets[i + 1]])
    return len(rows)


def _read_pack(path: Path) -> dict[str, np.ndarray]:
    """Every array of the pack at ``path``, its format checked; a DataError naming the file where it cannot be read."""
    try:
        with np.load(path) as z:
            data = {name: z[name] for name in z.files}
    except (FileNotFoundError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise DataError(f"{path}: not a readable face pack ({e}); make one with `python -m training.pack_data`") from None
    if int(data.get("format", -1)) != PACK_FORMAT:
        raise DataError(f"{path}: pack format {data.get('format')} is not {PACK_FORMAT}; pack the data again")
    return data


def load_packed(path: str | Path, images: bool = True) -> PackedFaces:
    """Read a pack and decode its faces (about 3 s for FER2013 on one core; ``images=False``: labels only)."""
    data = _read_pack(Path(path))
    jpeg, offsets = data["jpeg"].tobytes(), data["offsets"]
    decoded = (np.stack([_decode_bytes(jpeg[offsets[i]:offsets[i + 1]]) for i in range(len(offsets) - 1)])
               if images else np.zeros((0, 48, 48), dtype=np.uint8))
    faces = PackedFaces(keys=[str(k) for k in data["keys"]], split=data["split"], label=data["label"].astype(np.int64),
                        images=decoded, classes=tuple(str(c) for c in data["classes"]))
    if "ferplus_keys" in data:
        faces.ferplus_keys = [str(k) for k in data["ferplus_keys"]]
        faces.ferplus_classes = tuple(str(c) for c in data["ferplus_classes"])
        faces.ferplus_match = data["ferplus_match"].astype(np.int64)
        faces.ferplus_split = data["ferplus_split"]
        faces.ferplus_label = data["ferplus_label"].astype(np.int64)
    return faces


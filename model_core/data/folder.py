"""Any class-per-folder tree of face crops: ``<root>/<expression>/*.png``.

A class folder's images may also sit in subfolders of it (one per subject, say).

Folder names are expression names (any spelling :func:`model_core.expressions.canonical`
knows). If the root holds split folders instead (``train/``, ``val/``,
``test/``, each a class tree), ``split`` picks one; ``all`` takes every image
under the root. This is also the format :mod:`model_core.train.balance` writes.
"""

from __future__ import annotations

from pathlib import Path

from ..expressions import CANONICAL, canonical
from .records import DataError, Record, Records, image_files, require_dir, subfolders


def _is_class_tree(root: Path) -> bool:
    names = [p.name for p in subfolders(root)]
    try:
        return bool(names) and all(canonical(n) for n in names)
    except KeyError:
        return False


def _refuse_stray_class_folders(root: Path, trees: list[Path]) -> None:
    """Name the folder whose name is no expression, where the root is a class tree but for it.

    A folder with images straight inside is a class folder; read as a split folder it holds no classes, and the
    root would seem to have no images at all."""
    if not any(image_files(tree) for tree in trees):
        return
    for tree in trees:
        try:
            canonical(tree.name)
        except KeyError as e:
            raise DataError(f"{tree}: {e.args[0]} (each folder of a class tree is named by its expression)") from None


def load(root: str | Path, split: str = "all", skip_bad: bool = False, **_: object) -> Records:
    root = require_dir(Path(root), "image folder")
    if _is_class_tree(root):
        if split not in ("all", ""):
            raise DataError(f"{root}: is a class tree without split folders; use --split all")
        trees = [root]
    elif split == "all":
        trees = subfolders(root)
        _refuse_stray_class_folders(root, trees)
    else:
        trees = [require_dir(root / split, f"split folder {split!r}")]
    present: set[str] = set()
    by_tree: list[tuple[Path, str]] = []
    for tree in trees:
        for class_dir in subfolders(tree):
            try:
                name = canonical(class_dir.name)
            except KeyError as e:
                raise DataError(f"{class_dir}: {e.args[0]}") from None
            present.add(name)
            by_tree.append((class_dir, name))
    classes = tuple(c for c in CANONICAL if c in present)
    out = Records("folder", split, classes, [])
    for class_dir, name in by_tree:
        out.records.extend(Record(str(p), classes.index(name)) for p in image_files(class_dir, recursive=True))
    if not out.records:
        raise DataError(f"{root}: no images found for split {split!r}")
    return out

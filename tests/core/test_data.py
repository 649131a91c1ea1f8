"""Every dataset format: splits, labels, and refusing files it cannot label for certain."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import get_args

import numpy as np
import pytest
from PIL import Image

from model_core import Preprocess
from model_core.data import DATASETS, LOADERS, DataError, DatasetName, FaceDataset, load_records
from model_core.data.ckplus import fold_of_subjects
from model_core.data.dataset import decode


def test_fer2013_folder_split_by_file_prefix(fer2013_folder: Path) -> None:
    train = load_records("fer2013", fer2013_folder, "train")
    val = load_records("fer2013", fer2013_folder, "PublicTest")
    test = load_records("fer2013", fer2013_folder, "test")
    assert (len(train), len(val), len(test)) == (42, 14, 14)
    assert all("PublicTest_" in r.source for r in val.records)
    assert all("PrivateTest_" in r.source and "/test/" in r.source for r in test.records)
    assert train.class_counts()["disgust"] == 6


def test_fer2013_labels_match_the_pixels(fer2013_folder: Path) -> None:
    dataset = FaceDataset(load_records("fer2013", fer2013_folder, "train"), Preprocess())
    # The fake faces get brighter with the label: the label order must follow the class order.
    brightness = [dataset.images[dataset.labels == c].mean() for c in range(7)]
    assert brightness == sorted(brightness)


def test_fer2013_csv(fer2013_csv: Path) -> None:
    train = load_records("fer2013", fer2013_csv, "train")
    assert len(train) == 28 and train.records[0].pixels.shape == (48, 48)
    dataset = FaceDataset(load_records("fer2013", fer2013_csv.parent, "val"), Preprocess())
    assert len(dataset) == 7 and dataset.images.shape == (7, 48, 48)


def test_fer2013_csv_bad_row_names_the_line(fer2013_csv: Path) -> None:
    lines = fer2013_csv.read_text().splitlines()
    lines[3] = "3,1 2 3,Training"
    fer2013_csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"fer2013\.csv:4: 3 pixels"):
        load_records("fer2013", fer2013_csv, "train")
    records = load_records("fer2013", fer2013_csv, "train", skip_bad=True)
    assert len(records) == 27 and len(records.skipped) == 1


def test_corrupt_image_stops_with_its_name_or_is_skipped(fer2013_folder: Path) -> None:
    bad = next((fer2013_folder / "train" / "happy").glob("*.jpg"))
    bad.write_bytes(b"not a jpeg")
    records = load_records("fer2013", fer2013_folder, "train")
    with pytest.raises(DataError, match=bad.name):
        FaceDataset(records, Preprocess())
    dataset = FaceDataset(load_records("fer2013", fer2013_folder, "train"), Preprocess(), skip_bad=True)
    assert len(dataset) == 41 and any(bad.name in source for source, _ in dataset.skipped)


def test_unknown_class_folder_is_refused(fer2013_folder: Path) -> None:
    (fer2013_folder / "train" / "bored").mkdir()
    with pytest.raises(DataError, match="bored"):
        load_records("fer2013", fer2013_folder, "train")


def test_ferplus_majority_and_soft_labels(ferplus_root: Path) -> None:
    hard = load_records("ferplus", ferplus_root, "test")
    # 8 clear rows; the tie and the not-a-face row are dropped and counted.
    assert len(hard) == 8
    assert {why for _, why in hard.skipped} == {"dropped: top vote tie", "dropped: top vote unknown/NF"}
    soft = load_records("ferplus", ferplus_root, "train", label_mode="soft")
    assert len(soft) == 9  # the tie stays: its distribution is still informative
    first = soft.records[0]
    assert first.votes is not None and abs(sum(first.votes) - 1) < 1e-9 and max(first.votes) == pytest.approx(0.7)
    assert soft.classes[first.label] == "neutral"


def test_ferplus_missing_image_is_named(ferplus_root: Path) -> None:
    victim = sorted((ferplus_root / "FER2013Valid").glob("*.png"))[0]  # a clearly labelled row
    victim.unlink()
    with pytest.raises(DataError, match=victim.name):
        load_records("ferplus", ferplus_root, "val")
    assert len(load_records("ferplus", ferplus_root, "val", skip_bad=True)) == 7


def test_ferplus_soft_targets_drop_classes_the_model_lacks(ferplus_root: Path) -> None:
    from model_core.expressions import FER2013_CLASSES

    records = load_records("ferplus", ferplus_root, "train", label_mode="soft")
    dataset = FaceDataset(records, Preprocess(), classes=FER2013_CLASSES, drop_unknown_labels=True)
    assert dataset.targets.shape[1] == 7
    assert np.allclose(dataset.targets.sum(1), 1)
    assert any("contempt" in why for _, why in dataset.skipped)


def test_ckplus_folds_never_split_a_subject(ckplus_root: Path) -> None:
    all_subjects: set[str] = set()
    for fold in range(4):
        train = load_records("ckplus", ckplus_root, f"fold{fold}/train", folds=4)
        test = load_records("ckplus", ckplus_root, f"fold{fold}/test", folds=4)
        train_subjects = {r.group for r in train.records}
        test_subjects = {r.group for r in test.records}
        assert not train_subjects & test_subjects
        assert len(train) + len(test) == 36
        all_subjects |= test_subjects
    assert len(all_subjects) == 12  # every subject is tested exactly once across the folds
    assert fold_of_subjects(["S2", "S1", "S3"], 2) == {"S1": 0, "S2": 1, "S3": 0}
    with pytest.raises(DataError, match="fold7"):
        load_records("ckplus", ckplus_root, "fold7/test", folds=4)


def test_ckplus_without_metadata_reads_subjects_from_names(ckplus_root: Path) -> None:
    (ckplus_root / "metadata.csv").unlink()
    records = load_records("ckplus", ckplus_root, "all")
    assert len(records) == 36 and records.records[0].group.startswith("S")
    assert "contempt" in records.classes and "neutral" not in records.classes


def test_folder_tree_and_split_folders(make_folder: Callable[[dict[str, int]], Path]) -> None:
    root = make_folder({"happy": 3, "sadness": 2})
    records = load_records("folder", root, "all")
    assert records.classes == ("happy", "sad") and len(records) == 5
    with pytest.raises(DataError, match="split"):
        load_records("folder", root, "train")


def test_a_class_folder_with_no_expression_name_is_named(make_folder: Callable[[dict[str, int]], Path]) -> None:
    """One stray folder beside happy/ and sad/ (or only stray ones) is named, not reported as 'no images found'."""
    root = make_folder({"happy": 2, "sad": 2})
    (root / "foo").mkdir()
    shutil.copy(next((root / "happy").iterdir()), root / "foo")
    with pytest.raises(DataError, match=r"foo: unknown expression 'foo'; known: angry.*named by its expression"):
        load_records("folder", root, "all")
    with pytest.raises(DataError, match=r"happy/.*: a file, not a folder \(image folder expected\)"):
        load_records("folder", next((root / "happy").iterdir()), "all")


def test_unknown_dataset_is_refused() -> None:
    with pytest.raises(DataError, match="unknown dataset"):
        load_records("affectnet", "/nowhere", "train")


def test_the_dataset_names_are_the_loader_registrys() -> None:
    """DatasetName (what recipes validate) and DATASETS (what --dataset offers) name exactly the loaders, in order."""
    assert get_args(DatasetName) == tuple(LOADERS) == DATASETS == ("fer2013", "ferplus", "ckplus", "folder")


def test_face_databases_in_tiff_and_pgm_are_read_as_a_viewer_shows_them(tmp_path: Path) -> None:
    """JAFFE ships TIFF, older databases PGM, some cameras 16-bit PNG: none may be skipped, none may turn white."""
    gradient = np.linspace(0, 1, 48 * 48).reshape(48, 48)
    (tmp_path / "happy").mkdir()
    (tmp_path / "sadness").mkdir()
    Image.fromarray((gradient * 255).astype(np.uint8)).save(tmp_path / "happy" / "KA.HA1.29.tiff")
    Image.fromarray((gradient * 255).astype(np.uint8)).save(tmp_path / "sadness" / "s1.pgm")
    Image.fromarray((gradient * 65535).astype(np.uint16)).save(tmp_path / "sadness" / "s2.png")
    records = load_records("folder", tmp_path, "all")
    assert len(records) == 3
    for record in records.records:
        pixels, _ = decode(record, Preprocess())
        assert abs(float(pixels.mean()) - 127.5) < 2, record.source  # PIL's own convert("L") gives ~255 for 16 bits


def test_phone_photos_in_heic_and_avif_are_read_upright(tmp_path: Path) -> None:
    """A folder of one's own phone photos: HEIC and AVIF are listed and decoded as a viewer shows them."""
    (tmp_path / "happy").mkdir()
    shutil.copy(Path(__file__).parents[1] / "service" / "pictures" / "turned.heic", tmp_path / "happy" / "IMG_0001.HEIC")
    band = Image.new("L", (64, 32), 30)
    band.paste(220, (0, 0, 16, 32))  # bright on the left; EXIF orientation 6 turns it to the top
    exif = Image.Exif()
    exif[0x0112] = 6
    band.save(tmp_path / "happy" / "IMG_0002.avif", exif=exif.tobytes(), quality=90)
    records = load_records("folder", tmp_path, "all")
    assert sorted(Path(r.source).name for r in records.records) == ["IMG_0001.HEIC", "IMG_0002.avif"]
    for record in records.records:
        pixels, _ = decode(record, Preprocess())
        assert pixels[:8].mean() > pixels[-20:].mean() + 40, record.source  # the bright quarter is on top


def test_folders_named_by_jaffe_and_kdef_codes(tmp_path: Path) -> None:
    """JAFFE's file names code the expression (KA.AN1.39.tiff), KDEF's too (AF01AFS.JPG, AF for afraid): folders
    sorted by those codes are read, upper or lower case, each onto its canonical expression."""
    for code in ("AN", "di", "FE", "AF", "HA", "NE", "SA", "SU"):
        (tmp_path / code).mkdir()
        Image.new("L", (48, 48), 128).save(tmp_path / code / f"{code}.png")
    records = load_records("folder", tmp_path, "all")
    assert records.classes == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    labels = {Path(r.source).parent.name: records.classes[r.label] for r in records.records}
    assert labels == {"AN": "angry", "di": "disgust", "FE": "fear", "AF": "fear", "HA": "happy", "NE": "neutral",
                      "SA": "sad", "SU": "surprise"}


def test_a_folder_unzipped_on_a_mac_ignores_its_hidden_files(make_folder: Callable[[dict[str, int]], Path]) -> None:
    """A zip made on a Mac unpacks a ``__MACOSX`` folder of ``._name.png`` resource forks beside the class folders;
    notebooks leave ``.ipynb_checkpoints``: none of them is a class, none of their files an image."""
    root = make_folder({"happy": 2, "sad": 1})
    (root / "__MACOSX" / "happy").mkdir(parents=True)
    (root / "__MACOSX" / "happy" / "._img0.png").write_bytes(b"\x00\x05\x16\x07 resource fork")
    (root / ".ipynb_checkpoints").mkdir()
    (root / "happy" / "._img0.png").write_bytes(b"\x00\x05\x16\x07 resource fork")
    records = load_records("folder", root, "all")
    assert records.classes == ("happy", "sad") and len(records) == 3
    assert not any(Path(r.source).name.startswith(".") for r in records.records)


def test_a_class_folder_may_hold_its_images_in_subfolders(make_folder: Callable[[dict[str, int]], Path]) -> None:
    """Sets sorted by expression, then by subject (happy/S010/...), are read whole, not just their top level."""
    root = make_folder({"happy": 1, "sad": 1})
    (root / "happy" / "S010").mkdir()
    (root / "happy" / "img0.png").rename(root / "happy" / "S010" / "img0.png")
    (root / "sad" / "S011" / ".thumbnails").mkdir(parents=True)
    Image.new("L", (48, 48), 90).save(root / "sad" / "S011" / "img2.png")
    Image.new("L", (8, 8), 90).save(root / "sad" / "S011" / ".thumbnails" / "img2.png")
    records = load_records("folder", root, "all")
    assert sorted(Path(r.source).relative_to(root).as_posix() for r in records.records) == [
        "happy/S010/img0.png", "sad/S011/img2.png", "sad/img1.png"]

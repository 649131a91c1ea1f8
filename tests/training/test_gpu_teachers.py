"""GPU teachers on the CPU: the pack, the batched augmentation, one teacher, the whole lease script, the table.

A leased GPU is there for minutes and brings back only files: a slip in the
script, a key the teacher-targets reader does not know or an answer over the
lease's limits would cost the lease. Everything here runs on fake FER2013 and
FER+ folders whose FER+ PNGs are the original pixels of the FER2013 JPEGs.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from model_core import Preprocess, load_checkpoint
from model_core.checkpoint import build_card, save_checkpoint
from model_core.data import DataError, FaceDataset, load_records
from model_core.data.batch_augment import BatchAugment
from model_core.data.packed import load_packed, pack, unpack
from model_core.expressions import FER2013_CLASSES, FERPLUS_CLASSES
from model_core.fersnet import create_model
from model_core.train.ensemble import LabelledSplit, ensemble_table, format_table, read_teacher_folder
from model_core.train.teacher import TeacherTargets, read_teacher_targets, teacher_targets_for, write_probabilities
from model_core.train.teacher_nets import ARCHITECTURES, ResNet, build_teacher, load_teacher, save_teacher
from model_core.train.teachers import (
    TeacherPlan,
    distillation_loss,
    fold_of,
    lr_at,
    non_target,
    train_teacher,
    trained_on,
    write_teacher,
)
from model_core.transfer import with_answer_tail
from training import gpu_teachers, teacher_table

from ..core.fakes import REPO, face
from ..shared_fixtures import FERPLUS_COLUMNS, write_ferplus_csv

MIB = 1 << 20
#: FER+'s vote column of each FER2013 class.
FERPLUS_COLUMN = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness", "neutral": "neutral",
                  "sad": "sadness", "surprise": "surprise"}


@pytest.fixture
def ferplus_of(fer2013_folder: Path, tmp_path: Path) -> Path:
    """FER+ for the fake FER2013: each face's original pixels as a PNG, its label as the majority vote, rows shuffled,
    plus a tie (kept for soft labels, unscored) and a not-a-face row (dropped)."""
    root = tmp_path / "ferplus"
    folders = {"Training": "FER2013Train", "PublicTest": "FER2013Valid", "PrivateTest": "FER2013Test"}
    rows = []
    jpegs = sorted(fer2013_folder.glob("*/*/*.jpg"))
    order = np.random.default_rng(0).permutation(len(jpegs))
    for row, i in enumerate(order):
        path = jpegs[i]
        usage, number = path.stem.split("_")
        label = FER2013_CLASSES.index(path.parent.name)
        name = f"fer{row:07d}.png"
        (root / folders[usage]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(face(label, int(number) - 1000)).save(root / folders[usage] / name)  # the JPEG's original
        votes = [0] * 10
        votes[FERPLUS_COLUMNS.index(FERPLUS_COLUMN[path.parent.name])] = 8
        if row == 3:
            votes[FERPLUS_COLUMNS.index("contempt")] = 8  # a tie: listed, not scored
        if row == 4:
            votes = [1, 0, 0, 0, 0, 0, 0, 0, 0, 9]  # not a face: dropped
        rows.append([usage, name, *votes])
    write_ferplus_csv(root, rows)
    return root


@pytest.fixture
def packed(fer2013_folder: Path, ferplus_of: Path, tmp_path: Path) -> Path:
    return pack(fer2013_folder, tmp_path / "carry" / "fer2013.npz", ferplus_of).path


# --------------------------------------------------------------------------- the pack


def test_the_pack_holds_every_face_as_the_loaders_decode_it_and_finds_each_ferplus_face(
        fer2013_folder: Path, ferplus_of: Path, packed: Path) -> None:
    faces = load_packed(packed)
    records = load_records("fer2013", fer2013_folder, "all")
    assert faces.keys == [Path(r.source).relative_to(fer2013_folder).as_posix() for r in records.records]
    assert faces.label.tolist() == [r.label for r in records.records]
    decoded = FaceDataset(records, Preprocess(img_size=48))
    assert np.array_equal(faces.images, decoded.images)
    assert [faces.split[i] for i, k in enumerate(faces.keys) if "PublicTest_" in k] == [1] * 14

    assert faces.ferplus_keys is not None and faces.ferplus_match is not None and faces.ferplus_label is not None
    assert len(faces.ferplus_keys) == len(faces.keys) - 1  # the not-a-face row is dropped
    with open(ferplus_of / "fer2013new.csv", newline="") as f:
        listed = {row[1]: row for row in list(csv.reader(f))[1:]}
    for key, match, label in zip(faces.ferplus_keys, faces.ferplus_match, faces.ferplus_label, strict=True):
        folder, name = key.split("/")
        usage = {"FER2013Train": "Training", "FER2013Valid": "PublicTest", "FER2013Test": "PrivateTest"}[folder]
        assert Path(faces.keys[match]).name.startswith(usage + "_")  # matched within its split
        original = np.asarray(Image.open(ferplus_of / key))
        assert np.abs(original.astype(int) - faces.images[match].astype(int)).mean() < 3  # the same face
        expected = -1 if name == "fer0000003.png" else FERPLUS_CLASSES.index(faces.classes[faces.label[match]])
        assert label == expected, (key, listed[name])


def test_a_pack_without_ferplus_and_a_broken_pack(fer2013_folder: Path, tmp_path: Path) -> None:
    report = pack(fer2013_folder, tmp_path / "p.npz")
    faces = load_packed(report.path)
    assert report.ferplus == 0 and faces.ferplus_keys is None and len(faces.keys) == 70
    assert 0 < report.bytes < sum(p.stat().st_size for p in fer2013_folder.rglob("*.jpg"))  # compressed
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"bad\.npz: not a readable face pack"):
        load_packed(tmp_path / "bad.npz")
    sub = faces.subset(3)
    assert len(sub.keys) == 9 and len(set(sub.label[sub.split == 0].tolist())) == 3  # spread over the classes


def test_pack_data_command_prints_the_size(fer2013_folder: Path, ferplus_of: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from training.pack_data import main

    out = tmp_path / "c" / "f.npz"
    assert main(["--fer2013", str(fer2013_folder), "--ferplus", str(ferplus_of), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "MiB" in printed and "69 FER+ faces matched" in printed
    assert main(["--fer2013", str(tmp_path / "nowhere"), "--out", str(out)]) == 2



def test_unpacking_gives_back_the_folders_byte_for_byte(fer2013_folder: Path, packed: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from training.pack_data import main

    assert main(["--out", str(packed), "--unpack", str(tmp_path / "again")]) == 0
    assert "wrote 70 FER2013 faces" in capsys.readouterr().out
    originals = sorted(p.relative_to(fer2013_folder) for p in fer2013_folder.rglob("*.jpg"))
    assert sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*.jpg")) == originals
    assert all((tmp_path / "again" / f).read_bytes() == (fer2013_folder / f).read_bytes() for f in originals)
    for split in ("train", "val", "test"):
        assert [r.label for r in load_records("fer2013", tmp_path / "again", split).records] == \
            [r.label for r in load_records("fer2013", fer2013_folder, split).records]

    assert unpack(packed, tmp_path / "few", per_split=3) == 9
    assert len(load_records("fer2013", tmp_path / "few", "val").records) == 3
    assert main(["--out", str(tmp_path / "none.npz"), "--unpack", str(tmp_path / "x")]) == 2
    assert "none.npz: not a readable face pack" in capsys.readouterr().err


# --------------------------------------------------------------------------- augmentation, schedule, networks


def test_batch_augment_is_seeded_bounded_and_its_geometry_is_right() -> None:
    images = torch.rand(6, 1, 48, 48) * 2 - 1
    augment = BatchAugment()
    a = augment(images, torch.Generator().manual_seed(1))
    assert a.shape == images.shape and a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, augment(images, torch.Generator().manual_seed(1)))
    assert not torch.allclose(a, augment(images, torch.Generator().manual_seed(2)))
    still = BatchAugment(scale=(1, 1), shift=0, degrees=0, flip=0, brightness=0, contrast=0, erase=0)
    assert torch.allclose(still(images), images, atol=1e-5)
    mirror = BatchAugment(scale=(1, 1), shift=0, degrees=0, flip=1, brightness=0, contrast=0, erase=0)
    assert torch.allclose(mirror(images), images.flip(3), atol=1e-5)
    erased = BatchAugment(scale=(1, 1), shift=0, degrees=0, flip=0, brightness=0, contrast=0, erase=1,
                          erase_area=(0.1, 0.1))(images + 5, torch.Generator().manual_seed(0))  # +5: clamped to 1
    grey = (erased == 0).flatten(1).sum(1).float() / (48 * 48)
    assert ((grey > 0.05) & (grey < 0.15)).all()  # one patch of about a tenth of each face


STILL = {"scale": (1, 1), "shift": 0, "degrees": 0, "flip": 0, "brightness": 0, "contrast": 0, "erase": 0}


def test_gamma_and_blur_are_off_by_default_and_change_light_and_sharpness_when_asked() -> None:
    images = torch.rand(8, 1, 48, 48) * 2 - 1
    # Off: the default draws exactly the random numbers it drew before the two existed.
    assert torch.equal(BatchAugment()(images, torch.Generator().manual_seed(3)),
                       BatchAugment(gamma=1.0, blur=0.0)(images, torch.Generator().manual_seed(3)))
    quarter = torch.full((8, 1, 48, 48), -0.5)  # a quarter of the way from black to white
    lit = BatchAugment(**STILL, gamma=2.2)(quarter, torch.Generator().manual_seed(0))
    powers = (torch.log((lit + 1) / 2) / math.log(0.25)).flatten(1)  # one power per face, within [1/2.2, 2.2]
    assert torch.allclose(powers, powers[:, :1].expand(-1, 48 * 48), atol=1e-4)
    assert (powers >= 1 / 2.2 - 1e-4).all() and (powers <= 2.2 + 1e-4).all() and powers[:, 0].std() > 0.1
    blurred = BatchAugment(**STILL, blur=1.0)(images, torch.Generator().manual_seed(0))
    kept = blurred.flatten(1).std(1) / images.flatten(1).std(1)  # noise smoothed on every face, each its own amount
    assert (kept < 0.9).all() and kept.max() - kept.min() > 0.2
    assert torch.allclose(BatchAugment(**STILL, blur=1.0)(torch.full((2, 1, 48, 48), 0.3)), torch.full((2, 1, 48, 48), 0.3))
    with pytest.raises(ValueError, match="gamma"):
        BatchAugment(gamma=0.5)
    with pytest.raises(ValueError, match="blur"):
        BatchAugment(blur=1.5)


def test_a_teacher_asked_for_gamma_and_blur_trains_with_them(packed: Path, tmp_path: Path) -> None:
    assert gpu_teachers.main(["train", "--pack", str(packed), "--out", str(tmp_path / "lit"), "--arch", "tiny",
                              "--device", "cpu", "--threads", "1", "--max-steps", "1", "--batch-size", "8",
                              "--gamma", "2.2", "--blur", "0.3"]) == 0
    augment = json.loads((tmp_path / "lit" / "summary.json").read_text())["plan"]["augment"]
    assert (augment["gamma"], augment["blur"]) == (2.2, 0.3)


def test_the_learning_rate_warms_up_then_falls_to_zero_with_the_clock() -> None:
    assert lr_at(0.0, 0.1, 0.05) == 0 and lr_at(0.025, 0.1, 0.05) == pytest.approx(0.05)
    assert lr_at(0.05, 0.1, 0.05) == pytest.approx(0.1)
    assert lr_at(0.525, 0.1, 0.05) == pytest.approx(0.05) and lr_at(1.0, 0.1, 0.05) == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize("arch", ["tiny", "resnet18"])
def test_a_saved_teacher_loads_back_the_same_network(arch: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_teacher(arch).eval()
    folder = save_teacher(tmp_path / arch, model, arch, {"name": arch, "metrics": {"PublicTest": 50.0}})
    images = torch.rand(3, 1, 48, 48) * 2 - 1
    again = load_teacher(folder)
    assert torch.allclose(again(images), model(images), atol=0.05 * model(images).abs().max().item() + 1e-3)  # float16
    if arch == "tiny":  # a FERSNet teacher is an ordinary checkpoint
        assert load_checkpoint(folder).card.teacher == {"arch": "tiny"}
    else:
        assert isinstance(again, ResNet) and json.loads((folder / "teacher.json").read_text())["arch"] == arch
    assert all(a in ARCHITECTURES for a in ("vgg", "paper48", "small", "resnet18"))


# --------------------------------------------------------------------------- one teacher


def test_a_teacher_trains_and_leaves_files_the_distillation_reader_takes(
        fer2013_folder: Path, packed: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    faces = load_packed(packed)
    plan = TeacherPlan(name="t", arch="tiny", budget_s=60, batch_size=16, max_steps=8, eval_every=3)
    model, result, logits = train_teacher(plan, faces, "cpu", log=lambda line: None)
    assert result.steps == 8 and [h["step"] for h in result.history] == [3, 6, 8]
    best = max(h["val_accuracy"] for h in result.history)
    assert result.best_step == next(h["step"] for h in result.history if h["val_accuracy"] == best)
    assert result.accuracy["PublicTest"] == pytest.approx(best)  # the kept weights, scored again, with the mirror image
    assert set(result.accuracy) == {"PublicTest", "PrivateTest", "FER+ test"}
    assert logits.shape == (70, 7)

    folder = write_teacher(tmp_path / "t", model, result, logits, faces, "python -m training.gpu_teachers train ...")
    train = load_records("fer2013", fer2013_folder, "train")
    targets = teacher_targets_for(train, fer2013_folder, folder / "fer2013.csv.gz", FER2013_CLASSES)  # every face
    first = Path(train.records[0].source)
    row = faces.keys.index(first.relative_to(fer2013_folder).as_posix())
    assert np.allclose(targets[str(first)], logits[row].softmax(0).numpy(), atol=1e-4)
    ferplus = read_teacher_targets(folder / "ferplus.csv.gz")
    assert len(ferplus.probs) == 69 and all(k.startswith("FER2013") for k in ferplus.probs)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["steps"] == 8 and summary["plan"]["arch"] == "tiny" and "history" not in summary
    assert len((folder / "log.jsonl").read_text().splitlines()) == 3
    card = load_checkpoint(folder / "weights").card
    assert card.metrics["PublicTest"] == round(100 * result.accuracy["PublicTest"], 2)


def test_teacher_files_may_be_gzipped_and_a_broken_one_is_named(tmp_path: Path) -> None:
    probs = np.array([[0.2, 0.8], [0.6, 0.4]], dtype=np.float32)
    path = write_probabilities(tmp_path / "t.csv.gz", ["a.jpg", "b.jpg"], ["happy", "sad"], probs)
    back = read_teacher_targets(path)
    assert back.classes == ("happy", "sad") and np.allclose(back.probs["b.jpg"], [0.6, 0.4])
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match=r"t\.csv\.gz: unreadable teacher-targets file"):
        read_teacher_targets(path)


# --------------------------------------------------------------------------- the ensemble table


def test_the_table_scores_each_teacher_and_the_mean_of_those_so_far() -> None:
    classes = ("angry", "happy")
    a = TeacherTargets(Path("a"), classes, {"x": np.array([0.9, 0.1]), "y": np.array([0.6, 0.4]), "z": np.array([0.2, 0.8])})
    b = TeacherTargets(Path("b"), classes, {"x": np.array([0.3, 0.7]), "y": np.array([0.1, 0.9]), "z": np.array([0.4, 0.6])})
    split = LabelledSplit("val", ["x", "y", "z"], np.array([0, 1, 1]), classes)
    # FER+ labels over its own classes: a contempt face is always wrong for these teachers; -1 is not scored.
    plus = LabelledSplit("plus", ["x", "y", "z"], np.array([FERPLUS_CLASSES.index("contempt"), FERPLUS_CLASSES.index("happy"), -1]),
                         FERPLUS_CLASSES)
    missing = LabelledSplit("other", ["w"], np.array([0]), classes)
    rows = ensemble_table([("a", a), ("b", b)], [split, plus, missing])
    assert rows[0].alone == {"val": pytest.approx(2 / 3), "plus": 0.0, "other": None}
    assert rows[1].alone["val"] == pytest.approx(2 / 3) and rows[1].alone["plus"] == 0.5
    assert rows[1].ensemble["val"] == 1.0  # x: 0.6 angry, y: 0.65 happy, z: 0.7 happy
    assert rows[1].members == {"val": 2, "plus": 2, "other": 0}
    table = format_table(rows, [split, plus])
    assert "| 2 | b | 66.67 | 50.00 | 100.00 | 50.00 |" in table


def test_teacher_table_command_reads_committed_teachers(fer2013_folder: Path, ferplus_of: Path, packed: Path,
                                                        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    faces = load_packed(packed)
    teachers = tmp_path / "teachers"
    for i, arch in enumerate(("tiny", "tiny")):
        plan = TeacherPlan(name=f"t{i}", arch=arch, seed=i, budget_s=60, batch_size=16, max_steps=2)
        model, result, logits = train_teacher(plan, faces, "cpu", log=lambda line: None)
        write_teacher(tmp_path / "runs" / f"t{i}", model, result, logits, faces, "cmd")
        folder = teachers / f"0{i + 1}_t{i}"
        folder.mkdir(parents=True)
        for name in ("fer2013.csv.gz", "ferplus.csv.gz", "command.txt"):
            (folder / name).write_bytes((tmp_path / "runs" / f"t{i}" / name).read_bytes())
    assert teacher_table.main(["--teachers", str(teachers), "--fer2013", str(fer2013_folder),
                               "--ferplus", str(ferplus_of)]) == 0
    printed = capsys.readouterr().out
    assert "| 1 | 01_t0 |" in printed and "| 2 | 02_t1 |" in printed and "FER+ test" in printed
    expected = read_teacher_folder(folder)
    assert len(expected.probs) == 70 + 69
    assert teacher_table.main(["--teachers", str(tmp_path / "none"), "--fer2013", str(fer2013_folder)]) == 2


# --------------------------------------------------------------------------- the lease script, end to end


BLOCKER = '''
import sys
class _Absent:
    """Modules the GPU image lacks: the teachers must not need them."""
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"pydantic", "pydantic_settings", "fastapi", "uvicorn", "yuface", "multipart"}:
            raise ImportError(f"{name} is not on the GPU image")
sys.meta_path.insert(0, _Absent())
'''


def _lease_env(tmp_path: Path, packed: Path, teachers: str) -> dict[str, str]:
    """The script's environment, with the modules the GPU image lacks made unimportable."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER)
    return os.environ | {
        "OUT": str(tmp_path / "out"), "RUNS": str(tmp_path / "runs"), "PACK": str(packed), "TEACHERS": teachers,
        "BUDGET_S": "60", "PYTHON": sys.executable, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1",
    }


CPU_ARGS = ["--device", "cpu", "--threads", "1", "--max-steps", "2", "--batch-size", "8"]


@pytest.mark.slow
def test_the_lease_script_brings_back_probabilities_table_and_weights_within_the_limits(packed: Path, tmp_path: Path) -> None:
    out, runs = tmp_path / "out", tmp_path / "runs"
    env = _lease_env(tmp_path, packed, "tiny:0 tiny:1 resnet18:0")
    done = subprocess.run(["bash", str(REPO / "training" / "gpu_teachers.sh"), *CPU_ARGS], env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| 3 | resnet18_s0 |" in done.stdout and "weights brought back: " in done.stdout

    files = sorted(out.iterdir())
    assert len(files) <= 8 and all(f.stat().st_size <= 16 * MIB for f in files)
    assert sum(f.stat().st_size for f in files) <= 64 * MIB
    back = tmp_path / "back"
    with tarfile.open(out / "teachers.tar.gz") as tar:
        tar.extractall(back, filter="data")
    assert (back / "ensemble.md").read_text().startswith("| # | teacher |")
    for name in ("tiny_s0", "tiny_s1", "resnet18_s0"):
        assert len(read_teacher_folder(back / name).probs) == 70 + 69
        assert (back / name / "command.txt").read_text().startswith("python -m training.gpu_teachers train")
        assert "step 2" in (back / name / "console.log").read_text()
    joined = tmp_path / "weights.tar"
    joined.write_bytes(b"".join(p.read_bytes() for p in sorted(out.glob("weights.tar.part-*"))))
    with tarfile.open(joined) as tar:
        tar.extractall(back, filter="data")
    assert load_checkpoint(back / "tiny_s1" / "weights").card.name == "tiny_s1"
    assert isinstance(load_teacher(back / "resnet18_s0" / "weights"), ResNet)

    # Weights that would take the answer over the lease's limit stay behind; the probabilities always come back.
    small = tmp_path / "small_out"
    assert gpu_teachers.main(["collect", "--pack", str(packed), "--runs", str(runs), "--out", str(small),
                              "--max-mib", str(2 + (out / "teachers.tar.gz").stat().st_size / MIB)]) == 0
    assert [p.name for p in small.glob("weights.tar.part-*")] == ["weights.tar.part-00"]
    with tarfile.open(small / "weights.tar.part-00") as tar:
        names = tar.getnames()
    assert not any(n.startswith("resnet18_s0") for n in names) and any(n.startswith("tiny_s") for n in names)
    assert math.isclose((small / "teachers.tar.gz").stat().st_size, (out / "teachers.tar.gz").stat().st_size, rel_tol=0.2)


@pytest.mark.slow
def test_the_lease_script_trains_k_fold_teachers_from_their_specs(packed: Path, tmp_path: Path) -> None:
    done = subprocess.run(["bash", str(REPO / "training" / "gpu_teachers.sh"), *CPU_ARGS],
                          env=_lease_env(tmp_path, packed, "tiny:0:0/2 tiny:0:1/2"), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for fold in (0, 1):
        folder = tmp_path / "runs" / f"tiny_s0_f{fold}of2"
        summary = json.loads((folder / "summary.json").read_text())
        assert (summary["plan"]["fold"], summary["plan"]["folds"]) == (fold, 2)
        assert "--fold" in (folder / "command.txt").read_text()
        assert len(read_teacher_folder(folder).probs) < 70 + 69  # its training faces left out


@pytest.mark.slow
def test_a_failed_teacher_fails_the_script_but_the_others_and_its_log_come_back(packed: Path, tmp_path: Path) -> None:
    done = subprocess.run(["bash", str(REPO / "training" / "gpu_teachers.sh"), *CPU_ARGS],
                          env=_lease_env(tmp_path, packed, "tiny:0 nosuch:0"), capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and "nosuch_s0: FAILED" in done.stdout and "invalid choice: 'nosuch'" in done.stdout
    with tarfile.open(tmp_path / "out" / "teachers.tar.gz") as tar:
        names = tar.getnames()
    assert "nosuch_s0/console.log" in names and "tiny_s0/fer2013.csv.gz" in names and "ensemble.md" in names


# --------------------------------------------------------------------------- distillation


def test_the_distillation_loss_is_the_labels_alone_without_teachers_and_pulls_towards_them_with() -> None:
    torch.manual_seed(0)
    logits, labels = torch.randn(8, 7), torch.randint(0, 7, (8,))
    plan = TeacherPlan(name="s", arch="tiny", distill=0.8, temperature=2.0)
    hard = F.cross_entropy(logits, labels, label_smoothing=plan.label_smoothing)
    assert torch.allclose(distillation_loss(logits, labels, None, plan), hard)
    agreeing = distillation_loss(logits, labels, logits.log_softmax(1), plan)
    assert torch.allclose(agreeing, 0.2 * hard, atol=1e-6)  # a teacher that says what the student says adds nothing

    teacher = torch.randn(8, 7).log_softmax(1)
    student = logits.clone().requires_grad_(True)
    distillation_loss(student, labels, teacher, replace(plan, distill=1.0)).backward()
    assert student.grad is not None

    def gap(s: torch.Tensor) -> float:
        return float(F.kl_div(F.log_softmax(s / 2, 1), F.log_softmax(teacher / 2, 1), reduction="batchmean", log_target=True))

    assert gap(student.detach() - 0.5 * student.grad) < gap(student.detach())  # a step down moves towards the teacher


def test_non_target_distillation_reads_only_how_the_teachers_rank_the_other_classes() -> None:
    """NCKD: the teachers' certainty about the label itself changes nothing; their ranking of the rest does."""
    torch.manual_seed(1)
    logits, labels = torch.randn(6, 7), torch.tensor([0, 1, 2, 3, 4, 6])
    plan = TeacherPlan(name="s", arch="tiny", distill=2.0, temperature=2.0, distill_mode="non_target")
    hard = F.cross_entropy(logits, labels, label_smoothing=plan.label_smoothing)
    rows = torch.arange(6)

    teacher = torch.randn(6, 7)
    sure = teacher.clone()
    sure[rows, labels] += 20.0  # the same teachers, far surer of the label (as on faces they trained on)
    loss = distillation_loss(logits, labels, teacher.log_softmax(1), plan)
    assert torch.allclose(loss, distillation_loss(logits, labels, sure.log_softmax(1), plan), atol=1e-5)
    assert loss > hard  # the student ranks the other classes differently: a cost on top of the labels' loss

    agreeing = logits.clone()
    agreeing[rows, labels] -= 5.0  # a teacher that ranks the other classes as the student does, less sure of the label
    assert torch.allclose(distillation_loss(logits, labels, agreeing.log_softmax(1), plan), hard, atol=1e-5)

    kept = non_target(torch.arange(14.0).view(2, 7), torch.tensor([0, 6]))
    assert kept.tolist() == [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [7.0, 8.0, 9.0, 10.0, 11.0, 12.0]]


def test_targets_average_the_teachers_in_the_packs_order_and_name_one_that_lacks_faces(
        packed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    faces = load_packed(packed, images=False)
    rng = np.random.default_rng(0)
    made = []
    for name in ("a", "b"):
        probs = rng.dirichlet(np.ones(7), len(faces.keys))
        (tmp_path / name).mkdir()
        write_probabilities(tmp_path / name / "fer2013.csv.gz", faces.keys, FER2013_CLASSES, probs)
        made.append(probs)
    out = tmp_path / "soft.npy"
    assert gpu_teachers.main(["targets", "--pack", str(packed), "--teachers", str(tmp_path / "a"), str(tmp_path / "b"),
                              "--out", str(out)]) == 0
    assert np.allclose(np.load(out), (made[0] + made[1]) / 2, atol=1e-3)
    assert f"2 teachers over {len(faces.keys)} faces, 2 to 2 answers a face" in capsys.readouterr().out

    (tmp_path / "c").mkdir()
    write_probabilities(tmp_path / "c" / "fer2013.csv.gz", faces.keys[1:], FER2013_CLASSES, made[0][1:])
    assert gpu_teachers.main(["targets", "--pack", str(packed), "--teachers", str(tmp_path / "c"), "--out", str(out)]) == 2
    assert f"no teacher has probabilities for 1 faces of the pack (first: {faces.keys[0]})" in capsys.readouterr().err
    # Beside a teacher that answered it, the face gets that teacher's answer alone; the others, the mean of both.
    assert gpu_teachers.main(["targets", "--pack", str(packed), "--teachers", str(tmp_path / "a"), str(tmp_path / "c"),
                              "--out", str(out)]) == 0
    soft = np.load(out)
    assert np.allclose(soft[0], made[0][0], atol=1e-3) and np.allclose(soft[1:], made[0][1:], atol=1e-3)


def test_targets_of_a_smoke_run_need_only_cover_its_subset(packed: Path, tmp_path: Path) -> None:
    """`train --subset N` teachers answer N faces a split: `targets --subset N` averages those, and leaves the faces
    a student of the same subset never reads uniform; without --subset the same teachers are refused."""
    faces = load_packed(packed, images=False)
    rows = faces.subset(2).source_rows
    assert rows is not None and 0 < len(rows) < len(faces.keys)
    probs = np.random.default_rng(0).dirichlet(np.ones(7), len(rows))
    (tmp_path / "t").mkdir()
    write_probabilities(tmp_path / "t" / "fer2013.csv.gz", [faces.keys[i] for i in rows], FER2013_CLASSES, probs)
    out = tmp_path / "soft.npy"
    args = ["targets", "--pack", str(packed), "--teachers", str(tmp_path / "t"), "--out", str(out)]
    assert gpu_teachers.main(args) == 2
    assert gpu_teachers.main([*args, "--subset", "2"]) == 0
    soft = np.load(out).astype(np.float64)
    assert np.allclose(soft[rows], probs, atol=1e-3)
    others = np.setdiff1d(np.arange(len(faces.keys)), rows)
    assert np.allclose(soft[others], 1 / 7, atol=1e-3)
    # A teacher that answered every face keeps its answers outside the subset too: only unanswered faces are uniform.
    whole = np.random.default_rng(1).dirichlet(np.ones(7), len(faces.keys))
    (tmp_path / "w").mkdir()
    write_probabilities(tmp_path / "w" / "fer2013.csv.gz", list(faces.keys), FER2013_CLASSES, whole)
    assert gpu_teachers.main(["targets", "--pack", str(packed), "--teachers", str(tmp_path / "w"), "--out", str(out),
                              "--subset", "2"]) == 0
    assert np.allclose(np.load(out).astype(np.float64), whole, atol=1e-3)


def test_k_fold_teachers_each_answer_only_faces_they_never_trained_on_and_together_cover_the_pack(
        packed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(1)
    faces = load_packed(packed)
    train = set(faces.rows("train").tolist())
    folds = fold_of(faces.keys, 2)
    assert set(folds[sorted(train)]) == {0, 1}  # both folds hold Training faces
    folders = []
    for fold in (0, 1):
        plan = TeacherPlan(name=f"f{fold}", arch="tiny", batch_size=8, max_steps=2, fold=fold, folds=2)
        model, result, logits = train_teacher(plan, faces, "cpu", log=lambda line: None)
        folder = write_teacher(tmp_path / f"f{fold}", model, result, logits, faces, "python -m training.gpu_teachers ...")
        answered = set(read_teacher_targets(folder / "fer2013.csv.gz").probs)
        seen = {faces.keys[i] for i in trained_on(faces, plan.fold, plan.folds)}
        assert seen and not seen & answered  # nothing it trained on
        assert answered | seen == set(faces.keys)  # everything else, PublicTest and PrivateTest included
        assert seen == {faces.keys[i] for i in train if folds[i] != fold}
        ferplus = read_teacher_targets(folder / "ferplus.csv.gz").probs
        assert 0 < len(ferplus) < 69 and set(result.accuracy) == {"PublicTest", "PrivateTest", "FER+ test"}
        folders.append(str(folder))
    out = tmp_path / "soft.npy"
    assert gpu_teachers.main(["targets", "--pack", str(packed), "--teachers", *folders, "--out", str(out)]) == 0
    assert "1 to 2 answers a face" in capsys.readouterr().out  # Training faces once, the others twice
    with pytest.raises(ValueError, match="fold must be 0 to 1"):
        TeacherPlan(name="x", arch="tiny", fold=2, folds=2)


def test_a_student_starts_from_a_checkpoint_learns_from_soft_targets_and_stays_a_whole_fersnet(
        packed: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    start = create_model("fersnet_tiny", synthesis_output="masked")
    preprocess = Preprocess(img_size=48, face_scale=0.9)
    save_checkpoint(tmp_path / "start", start, build_card(start, FER2013_CLASSES, preprocess, name="start"))
    whole = load_packed(packed)
    np.save(tmp_path / "soft.npy", np.full((len(whole.keys), 7), 1 / 7, dtype=np.float16))
    faces = whole.subset(6)  # a smoke run's subset: the soft targets are picked for its faces
    plan = TeacherPlan(name="student", arch="init:start", init=str(tmp_path / "start"), soft_targets=str(tmp_path / "soft.npy"),
                       distill=0.5, budget_s=60, batch_size=4, max_steps=3, ema=0.0)
    model, result, logits = train_teacher(plan, faces, "cpu", log=lambda line: None)
    assert result.steps == 3 and logits.shape == (len(faces.keys), 7)

    back = load_checkpoint(write_teacher(tmp_path / "student", model, result, logits, faces, "cmd") / "weights")
    assert back.preprocess == preprocess and back.model.config.synthesis_output == "masked"
    assert set(back.model.state_dict()) == set(start.state_dict())  # the decoder too: a recipe's init_from takes it
    before, after = start.state_dict(), back.model.state_dict()
    assert not torch.equal(after["head.fc.weight"], before["head.fc.weight"].half().float())  # it learnt

    np.save(tmp_path / "other.npy", np.zeros((3, 7), dtype=np.float16))
    with pytest.raises(DataError, match="other.npy: \\(3, 7\\) probabilities, but the pack holds"):
        train_teacher(replace(plan, soft_targets=str(tmp_path / "other.npy")), faces, "cpu", log=lambda line: None)


@pytest.mark.slow
def test_the_distillation_lease_script_brings_back_every_student_within_the_limits(packed: Path, tmp_path: Path) -> None:
    start = create_model("fersnet_tiny", synthesis_output="masked")
    save_checkpoint(tmp_path / "start", start, build_card(start, FER2013_CLASSES, Preprocess(img_size=48), name="start"))
    np.save(tmp_path / "soft.npy", np.full((len(load_packed(packed, images=False).keys), 7), 1 / 7, dtype=np.float16))
    env = _lease_env(tmp_path, packed, "") | {"INIT": str(tmp_path / "start"), "SOFT": str(tmp_path / "soft.npy")}
    done = subprocess.run(["bash", str(REPO / "training" / "gpu_distill.sh"), *CPU_ARGS], env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    students = ("default_ce_s0", "default_kd_s0", "default_kd_s1", "scratch_kd_s0")
    assert all(f"| {name} |" in done.stdout for name in students)
    files = sorted((tmp_path / "out").iterdir())
    assert len(files) <= 8 and all(f.stat().st_size <= 16 * MIB for f in files)
    summaries = {n: json.loads((tmp_path / "runs" / n / "summary.json").read_text()) for n in students}
    assert summaries["default_kd_s0"]["plan"]["distill"] == 0.8 and summaries["default_ce_s0"]["plan"]["distill"] == 0
    assert summaries["scratch_kd_s0"]["plan"]["init"] is None and summaries["default_ce_s0"]["plan"]["init"] == str(tmp_path / "start")


@pytest.mark.slow
def test_one_lease_trains_k_fold_teachers_then_students_on_their_answers_within_the_limits(
        packed: Path, tmp_path: Path) -> None:
    # The students start from a network shaped like the bundled default: two heads, FER+'s tail served.
    start = with_answer_tail(create_model("fersnet_tiny", synthesis_output="masked"), FER2013_CLASSES, FERPLUS_CLASSES)
    save_checkpoint(tmp_path / "start", start, build_card(start, FERPLUS_CLASSES, Preprocess(img_size=48), name="start",
                                                          expressions=FER2013_CLASSES))
    env = _lease_env(tmp_path, packed, "") | {"INIT": str(tmp_path / "start"), "FOLDS": "2", "TEACHER_ARCH": "tiny",
                                               "TEACHER_BUDGET_S": "60", "STUDENT_BUDGET_S": "60"}
    done = subprocess.run(["bash", str(REPO / "training" / "gpu_kfold_distill.sh"), *CPU_ARGS], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out, runs = tmp_path / "out", tmp_path / "runs"
    assert [p.name for p in (out / "teachers").iterdir()] == ["teachers.tar.gz"]  # probabilities only, no weights
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8 and all(f.stat().st_size <= 16 * MIB for f in files)
    assert sum(f.stat().st_size for f in files) <= 64 * MIB
    assert any(p.name.startswith("weights.tar.part-") for p in (out / "students").iterdir())
    soft = np.load(runs / "soft_targets_kfold.npy")
    assert soft.shape == (len(load_packed(packed, images=False).keys), 7)  # every face answered by an unseen teacher
    summary = json.loads((runs / "students" / "default_kd_s0" / "summary.json").read_text())
    assert summary["plan"]["soft_targets"] == str(runs / "soft_targets_kfold.npy")

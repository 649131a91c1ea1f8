"""Teachers on a GPU host: train one against the clock (``train``), then gather them all (``collect``).

``bash training/gpu_teachers.sh`` runs one ``train`` per teacher side by side and
then ``collect``; see it for the whole trip. By hand::

    python -m training.gpu_teachers train --pack .carry/fer2013.npz --arch vgg --seed 0 --budget-s 300 \\
        --out runs/teachers/vgg_s0
    python -m training.gpu_teachers collect --pack .carry/fer2013.npz --runs runs/teachers --out $OUT

``collect`` prints each teacher's and the growing ensemble's accuracy, and
leaves in ``--out`` what a remote GPU host can return (at most 8 files of 16 MiB, 64 MiB
in all): ``teachers.tar.gz`` (each teacher's probabilities, summary, log,
command and card, ready to untar into ``training/teachers/``; the ensemble
table) and ``weights.tar.part-NN`` (the float16 weights, best PublicTest
first, as many as fit; ``cat weights.tar.part-* | tar -x`` joins them).

Only PyTorch, NumPy, Pillow and safetensors are needed, so it runs on a bare
GPU image without installing this project.
"""

from __future__ import annotations

import argparse
import io
import json
import shlex
import sys
import tarfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model_core.data import DataError
from model_core.data.batch_augment import BatchAugment
from model_core.data.packed import load_packed
from model_core.expressions import FER2013_CLASSES
from model_core.hardware import resolve_device
from model_core.train.ensemble import ensemble_table, format_table, read_teacher_folder
from model_core.train.teacher_nets import ARCHITECTURES
from model_core.train.teachers import DISTILL_MODES, SUMMARY_FILE, TeacherPlan, splits_of_pack, train_teacher, write_teacher

MIB = 1 << 20
#: What of a teacher's folder goes into teachers.tar.gz: everything but the weights themselves.
SMALL_FILES = ("fer2013.csv.gz", "ferplus.csv.gz", SUMMARY_FILE, "log.jsonl", "command.txt", "console.log",
               "weights/card.json", "weights/teacher.json")


def train(args: argparse.Namespace, argv: list[str]) -> int:
    torch.set_num_threads(args.threads)
    device = str(resolve_device(args.device))
    start = time.perf_counter()
    faces = load_packed(args.pack)
    if args.subset:
        faces = faces.subset(args.subset)
    print(f"{len(faces.keys)} faces decoded from {args.pack} in {time.perf_counter() - start:.1f} s; device {device}",
          flush=True)
    if not args.arch and not args.init:
        raise DataError("name the network: --arch ARCH, or --init CHECKPOINT for a student of a saved FERSNet")
    arch = args.arch or f"init:{Path(args.init).name}"
    name = args.name or f"{args.arch or 'student'}_s{args.seed}" + (f"_f{args.fold}of{args.folds}" if args.fold is not None else "")
    plan = TeacherPlan(name=name, arch=arch, seed=args.seed, budget_s=args.budget_s, batch_size=args.batch_size,
                       lr=args.lr, ema=args.ema, max_steps=args.max_steps, eval_every=args.eval_every,
                       compile=args.compile, flip_tta=not args.no_flip_tta, init=args.init,
                       soft_targets=args.soft_targets, distill=args.distill if args.soft_targets else 0.0,
                       temperature=args.temperature, distill_mode=args.distill_mode, fold=args.fold, folds=args.folds,
                       augment=replace(BatchAugment(), gamma=args.gamma, blur=args.blur))
    model, result, logits = train_teacher(plan, faces, device, log=lambda line: print(line, flush=True))
    command = "python -m training.gpu_teachers " + shlex.join(argv)
    folder = write_teacher(args.out, model, result, logits, faces, command)
    print(f"wrote {folder} ({time.perf_counter() - start:.0f} s in all)", flush=True)
    return 0


def targets(args: argparse.Namespace) -> int:
    """Average the teachers' probabilities into one row per face of the pack: a student's soft targets.

    Each face gets the mean of the teachers that answered it: all of them for a whole-set teacher, only the
    ones that held it out for K-fold teachers (which leave out the faces they trained on). A face that no
    teacher answered is an error: the teachers do not cover the pack. With ``--subset N`` (smoke runs) only
    the faces of ``train --subset N`` must be covered; unanswered faces outside it get the uniform
    distribution, which a student of the same subset never reads.
    """
    faces = load_packed(args.pack, images=False)
    if tuple(faces.classes) != tuple(FER2013_CLASSES):
        raise DataError(f"{args.pack}: classes {faces.classes}, not FER2013's")
    total = np.zeros((len(faces.keys), len(FER2013_CLASSES)), dtype=np.float64)
    answers = np.zeros(len(faces.keys), dtype=np.int64)
    for folder in args.teachers:
        taught = read_teacher_folder(folder)
        if tuple(taught.classes) != tuple(FER2013_CLASSES):
            raise DataError(f"{folder}: classes {taught.classes}, not FER2013's")
        rows = [i for i, key in enumerate(faces.keys) if key in taught.probs]
        if rows:
            total[rows] += np.stack([taught.probs[faces.keys[i]] for i in rows])
            answers[rows] += 1
    if args.subset:  # faces outside a smoke run's subset that no teacher answered: uniform, never read
        unread = answers == 0
        unread[faces.subset(args.subset).source_rows] = False
        total[unread], answers[unread] = 1.0 / len(FER2013_CLASSES), 1
    if not answers.all():
        missing = [faces.keys[i] for i in np.flatnonzero(answers == 0)]
        raise DataError(f"no teacher has probabilities for {len(missing)} faces of the pack (first: {missing[0]}); "
                        "K-fold teachers must cover every fold")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, (total / answers[:, None]).astype(np.float16))
    print(f"wrote {args.out}: {len(args.teachers)} teachers over {len(faces.keys)} faces, "
          f"{answers.min()} to {answers.max()} answers a face ({Path(args.out).stat().st_size / MIB:.2f} MiB)")
    return 0


def collect(args: argparse.Namespace) -> int:
    runs = Path(args.runs)
    given = [runs / n for n in args.teachers] if args.teachers else sorted(p.parent for p in runs.glob(f"*/{SUMMARY_FILE}"))
    folders = [f for f in given if (f / SUMMARY_FILE).is_file()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    packed = out / "teachers.tar.gz"
    table, report = "", dict[str, Any]()
    if folders:
        faces = load_packed(args.pack, images=False)
        if args.subset:
            faces = faces.subset(args.subset)
        splits = [split for split, _ in splits_of_pack(faces)]
        rows = ensemble_table([(f.name, read_teacher_folder(f)) for f in folders], splits)
        table = format_table(rows, splits)
        print(table)
        summaries = {f.name: json.loads((f / SUMMARY_FILE).read_text()) for f in folders}
        report = {"teachers": [f.name for f in folders], "rows": [vars(r) for r in rows], "summaries": summaries}
    with tarfile.open(packed, "w:gz") as tar:  # the console logs of failed teachers too: all a failed run leaves
        for folder in given:
            for rel in SMALL_FILES:
                if (folder / rel).is_file():
                    tar.add(folder / rel, arcname=f"{folder.name}/{rel}")
        for extra in args.extra:
            if Path(extra).is_file():
                tar.add(extra, arcname=Path(extra).name)
        if folders:
            _add_text(tar, "ensemble.md", table + "\n")
            _add_text(tar, "ensemble.json", json.dumps(report, indent=2) + "\n")
    if not folders:
        print(f"error: no finished teacher under {runs}", file=sys.stderr)
        return 1

    # Weights, best PublicTest first, while the whole answer stays within the 8-file, 64 MiB limit.
    room = args.max_mib * MIB - packed.stat().st_size - MIB // 2  # half a MiB for the tar's own headers
    by_score = sorted(folders, key=lambda f: -report["summaries"][f.name]["accuracy"].get("PublicTest", 0.0))
    kept: list[tuple[Path, int]] = []
    left: list[str] = []
    for folder in by_score:
        size = sum(p.stat().st_size for p in (folder / "weights").glob("*") if p.is_file())
        parts_after = -(-(sum(s for _, s in kept) + size) // (args.part_mib * MIB))
        if size <= room and parts_after <= args.max_files - 1:
            kept.append((folder, size))
            room -= size
        else:
            left.append(folder.name)
    if kept:
        tar_path = runs / "weights.tar"
        with tarfile.open(tar_path, "w") as tar:
            for folder, _ in kept:
                tar.add(folder / "weights", arcname=f"{folder.name}/weights")
        _split(tar_path, out / "weights.tar.part-", args.part_mib * MIB)
    print(f"weights brought back: {', '.join(f.name for f, _ in kept) or 'none'}"
          + (f"; left on this machine (over the 64 MiB that comes back): {', '.join(left)}" if left else ""))
    for path in sorted(out.iterdir()):
        print(f"{path}: {path.stat().st_size / MIB:.2f} MiB")
    return 0


def _add_text(tar: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _split(path: Path, prefix: Path, part_bytes: int) -> None:
    """Cut ``path`` into ``prefix``00, 01, ... of at most ``part_bytes`` (as ``split -b -d`` would)."""
    with open(path, "rb") as f:
        for i, chunk in enumerate(iter(lambda: f.read(part_bytes), b"")):
            Path(f"{prefix}{i:02d}").write_bytes(chunk)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.gpu_teachers", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one teacher on a pack and write its folder")
    t.add_argument("--pack", default=".carry/fer2013.npz", help="made by python -m training.pack_data")
    t.add_argument("--out", required=True, help="the teacher's folder")
    t.add_argument("--arch", choices=sorted(ARCHITECTURES), help="a fresh network of this architecture ...")
    t.add_argument("--init", help="... or a student starting from this FERSNet checkpoint (the bundled default, say)")
    t.add_argument("--soft-targets", help="distil: the teachers' averaged probabilities (made by `targets`)")
    t.add_argument("--distill", type=float, default=0.8, help="weight of the soft targets' loss "
                   "(labels: the rest, or all of theirs with --distill-mode non_target)")
    t.add_argument("--temperature", type=float, default=2.0, help="softening of both sides in the soft targets' loss")
    t.add_argument("--distill-mode", choices=DISTILL_MODES, default="full",
                   help="full: the teachers' whole answer, labels weighted 1 - DISTILL; non_target: only how they rank "
                        "the classes other than the label, added to the labels' loss with weight DISTILL")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--fold", type=int, help="a K-fold teacher: hold out this fold of the Training faces (0 to FOLDS-1) "
                   "and leave probabilities only for faces it never trained on")
    t.add_argument("--folds", type=int, default=5, help="with --fold: how many folds")
    t.add_argument("--name", help="default: ARCH_sSEED, and _fFOLDofFOLDS for a K-fold teacher")
    t.add_argument("--budget-s", type=float, default=300.0, help="wall-clock seconds of training (the schedule fits it)")
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument("--lr", type=float, default=0.1, help="peak SGD learning rate for 256 faces a batch")
    t.add_argument("--ema", type=float, default=0.999, help="decay of the weights' moving average; 0 for none")
    t.add_argument("--gamma", type=float, default=1.0,
                   help="augment the light too: mid-tones raised to a power in [1/GAMMA, GAMMA] (1: none; 2.2 reaches "
                        "bench.robustness's dim photos)")
    t.add_argument("--blur", type=float, default=0.0, help="augment with a Gaussian blur on this share of the faces")
    t.add_argument("--max-steps", type=int, help="stop after this many steps even within the budget")
    t.add_argument("--eval-every", type=int, help="steps between PublicTest scorings (default: one epoch)")
    t.add_argument("--compile", action="store_true", help="torch.compile the network (eager if that fails)")
    t.add_argument("--no-flip-tta", action="store_true", help="score faces without averaging in their mirror image")
    t.add_argument("--device", default="auto")
    t.add_argument("--threads", type=int, default=2, help="CPU threads (the GPU does the work)")
    t.add_argument("--subset", type=int, help="smoke runs only: the first N faces of each split")
    g = sub.add_parser("targets", help="average teachers' probabilities into a student's soft targets (.npy)")
    g.add_argument("--pack", default=".carry/fer2013.npz")
    g.add_argument("--teachers", nargs="+", required=True, help="teacher folders (holding fer2013.csv.gz)")
    g.add_argument("--out", default=".carry/soft_targets.npy")
    g.add_argument("--subset", type=int, help="smoke runs: teachers trained with `train --subset N` cover these faces")
    c = sub.add_parser("collect", help="score the ensemble and pack what comes back from the GPU host")
    c.add_argument("--pack", default=".carry/fer2013.npz")
    c.add_argument("--runs", required=True, help="the folder holding one folder per teacher")
    c.add_argument("--teachers", nargs="*", help="teacher folder names in ensemble order (default: all, by name)")
    c.add_argument("--out", required=True)
    c.add_argument("--extra", nargs="*", default=[], help="more small files to put in teachers.tar.gz (logs)")
    c.add_argument("--subset", type=int, help="score the faces `train --subset N` scored (smoke runs)")
    c.add_argument("--max-mib", type=float, default=64)
    c.add_argument("--max-files", type=int, default=8)
    c.add_argument("--part-mib", type=int, default=15)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    try:
        if args.command == "train":
            return train(args, argv)
        return targets(args) if args.command == "targets" else collect(args)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

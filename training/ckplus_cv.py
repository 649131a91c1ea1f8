"""CK+ 10-fold cross-validation of the paper's ablation: single-task, hard sharing, selective sharing,
and selective sharing plus synthetic balancing, with several seeds and the same budget for every row.

    python -m training.ckplus_cv --out runs/ckplus_cv            # all rows, 10 folds, seeds 0 1 2
    python -m training.ckplus_cv --out runs/ckplus_cv --table    # print the table of what has finished
    python -m training.ckplus_cv --out runs/ckplus_cv --table --seeds 0 --only-folds 0 1   # of these runs only
    python -m training.ckplus_cv --out runs/ckplus_cv_pre --pretrained none=A hard=B selective=C   # pretrained
    python -m training.ckplus_cv --out runs/ckplus_cv_pre --rows selective+ft --pretrained selective=C  # some rows

Rows (every one trains ``--epochs`` epochs on the fold's training subjects, from scratch or, with
``--pretrained``, from a checkpoint of the same sharing mode trained on another dataset):

``none`` / ``hard`` / ``selective``
    the three sharing modes, trained jointly (FER + FES + discriminator, except ``none``).
``selective+ft``
    the ``selective`` model fine-tuned ``--finetune-epochs`` more epochs on the *real* training faces:
    the control that isolates the effect of the extra epochs.
``selective+balance``
    the same fine-tuning on real plus synthetic faces: the ``selective`` model's FES branch redraws
    faces of the other classes as each rare class until all classes are as large as the largest.

Pretraining (the paper pretrained on BU-4DFE) must give every row the same start: ``--pretrained``
takes one checkpoint per sharing mode, one for each mode the rows use, each trained with the same
recipe on, say, FER2013 or FER+; their class-indexed tensors are matched to CK+'s classes by name
(:mod:`model_core.transfer`): from FER2013 contempt starts fresh, from FER+ it carries over, and
neutral is dropped.

``--rows`` runs some rows only, so that a budget too large for one sitting can be spent on the row a
question is about first (the ``selective+`` rows bring ``selective`` along: they fine-tune its model).
The other rows can join the same log later, as long as each sharing mode keeps its start.

Each fold is tested once on subjects the model never saw; nothing is selected on the test fold (the
last epoch is kept). Results go to ``<out>/results.jsonl``, one line a run, so an interrupted
experiment continues where it stopped; checkpoints are deleted once measured (``--keep`` keeps them).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from model_core import CheckpointError, load_checkpoint
from model_core.data import load_records
from model_core.train import TrainConfig, Trainer, balance
from model_core.train.trainer import hardware

ROWS = ("none", "hard", "selective", "selective+ft", "selective+balance")
SHARING = ("none", "hard", "selective")
#: The rows that fine-tune the ``selective`` row's model of the same fold and seed.
FROM_SELECTIVE = ("selective+ft", "selective+balance")
#: What a log line records about the budget; a log holds runs of one setting only, or its table would mix them.
SETTINGS = ("variant", "epochs", "finetune_epochs", "pretrained")
DEFAULT_SEEDS = (0, 1, 2)


def _recipe(args: argparse.Namespace, name: str, fold: int, seed: int, sharing: str, out: Path, **extra: Any) -> TrainConfig:
    split = {"dataset": "ckplus", "root": args.root, "folds": args.folds}
    recipe: dict[str, Any] = {
        "name": name,
        "out_dir": str(out),
        "seed": seed,
        "model": {"variant": args.variant, "sharing": sharing},
        "train": [{**split, "split": f"fold{fold}/train"}],
        "report": [{**split, "split": f"fold{fold}/test"}],
        "optim": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "warmup_epochs": 1},
        "select": "last",
        "num_workers": 0,
        "progress": False,
        "figures": False,
    }
    for key, value in extra.items():
        recipe[key] = {**recipe.get(key, {}), **value} if isinstance(value, dict) else value
    return TrainConfig.model_validate(recipe)


def _run(config: TrainConfig) -> tuple[Path, dict[str, Any], float]:
    """Train one recipe; its checkpoint, the test fold's metrics (accuracy, macro-F1, recalls) and the seconds."""
    start = time.time()
    best = Trainer(config).fit()
    card = load_checkpoint(best).card
    key = next(k for k in card.metrics if k.endswith("/test"))
    return best, card.metrics[key], time.time() - start


def sharing_of(row: str) -> str:
    """The sharing mode a row trains: ``selective+ft`` and ``selective+balance`` fine-tune a selective model."""
    return row.partition("+")[0]


def parse_rows(rows: list[str] | None) -> tuple[str, ...]:
    """The rows to run in :data:`ROWS` order, all by default; a ``selective+`` row brings ``selective`` along.
    Raises ``ValueError`` for an unknown row."""
    if not rows:
        return ROWS
    unknown = [row for row in rows if row not in ROWS]
    if unknown:
        raise ValueError(f"--rows: unknown {', '.join(map(repr, unknown))}; the rows are {', '.join(ROWS)}")
    chosen = set(rows) | ({"selective"} if set(rows) & set(FROM_SELECTIVE) else set())
    return tuple(row for row in ROWS if row in chosen)


def run_fold(args: argparse.Namespace, fold: int, seed: int, done: set[tuple[str, int, int]], log: Path) -> None:
    """Train and log the rows of ``args.rows`` that ``done`` lacks for this fold and seed."""
    work = Path(args.out) / "work"

    def record(row: str, metrics: dict[str, Any], seconds: float, **extra: Any) -> None:
        line = {"row": row, "fold": fold, "seed": seed, "accuracy": metrics["accuracy"],
                "macro_f1": metrics.get("macro_f1"), "per_class_recall": metrics.get("per_class_recall"),
                "seconds": round(seconds, 1), **settings(args), "hardware": hardware(), **extra}
        with open(log, "a") as f:
            f.write(json.dumps(line) + "\n")
        print(f"fold {fold} seed {seed} {row:<18} accuracy {100 * metrics['accuracy']:.2f} %  ({seconds:.0f} s)", flush=True)

    trained: set[str] = set()
    for sharing in SHARING:
        if sharing not in args.rows:
            continue
        if (sharing, fold, seed) in done and not (sharing == "selective" and _needs_selective(args.rows, done, fold, seed)):
            continue
        out = work / f"{sharing}_f{fold}_s{seed}"
        pretrained = {"model": {"init_from": args.pretrained[sharing]}} if args.pretrained else {}
        _, metrics, seconds = _run(_recipe(args, f"ck_{sharing}", fold, seed, sharing, out, **pretrained))
        trained.add(sharing)
        if (sharing, fold, seed) not in done:
            record(sharing, metrics, seconds)
        if sharing != "selective" and not args.keep:
            shutil.rmtree(out, ignore_errors=True)

    base = work / f"selective_f{fold}_s{seed}" / "best"
    no_synthesis = {"adversarial": 0, "classification": 0, "cycle": 0, "identity": 0}
    finetune = {"epochs": args.finetune_epochs, "batch_size": args.batch_size, "lr": args.lr / 4, "warmup_epochs": 0}
    if "selective+ft" in args.rows and ("selective+ft", fold, seed) not in done:
        out = work / f"ft_f{fold}_s{seed}"
        config = _recipe(args, "ck_selective_ft", fold, seed, "selective", out,
                         model={"init_from": str(base)}, loss=no_synthesis, optim=finetune)
        _, metrics, seconds = _run(config)
        record("selective+ft", metrics, seconds)
        shutil.rmtree(out, ignore_errors=True)
    if "selective+balance" in args.rows and ("selective+balance", fold, seed) not in done:
        start = time.time()
        synthetic = work / f"synthetic_f{fold}_s{seed}"
        records = load_records("ckplus", args.root, f"fold{fold}/train", folds=args.folds)
        report = balance(load_checkpoint(base), records, synthetic, seed=seed, progress=False)
        out = work / f"bal_f{fold}_s{seed}"
        config = _recipe(args, "ck_selective_balance", fold, seed, "selective", out,
                         model={"init_from": str(base)}, loss=no_synthesis, optim=finetune)
        config.train.append(config.train[0].model_copy(update={"dataset": "folder", "root": str(synthetic), "split": "all"}))
        _, metrics, _ = _run(config)
        record("selective+balance", metrics, time.time() - start, synthetic=sum(report.written.values()))
        if not args.keep:
            for path in (out, synthetic):
                shutil.rmtree(path, ignore_errors=True)
    # Only the call that trained the selective model deletes it: another call, running other rows of this
    # fold side by side (``--rows none``, say), may still be fine-tuning from it.
    if "selective" in trained and not args.keep:
        shutil.rmtree(base.parent, ignore_errors=True)


def _needs_selective(rows: tuple[str, ...], done: set[tuple[str, int, int]], fold: int, seed: int) -> bool:
    """The selective checkpoint is needed again only if a fine-tuning row of this fold is to run and missing."""
    return any(row in rows and (row, fold, seed) not in done for row in FROM_SELECTIVE)


def parse_pretrained(specs: list[str] | None, rows: tuple[str, ...] = ROWS) -> dict[str, str] | None:
    """``["none=PATH", "hard=PATH", "selective=PATH"]`` as a map, checked: one checkpoint per sharing
    mode the rows train, each of that mode, so no row starts from more or less than another. Raises
    ``ValueError``."""
    if not specs:
        return None
    pretrained: dict[str, str] = {}
    for spec in specs:
        sharing, _, path = spec.partition("=")
        if sharing not in SHARING or not path:
            raise ValueError(f"{spec!r}: expected SHARING=CHECKPOINT with SHARING one of {', '.join(SHARING)}")
        try:
            card_sharing = load_checkpoint(path).card.sharing
        except CheckpointError as exc:
            raise ValueError(f"{spec!r}: {exc}") from None
        if card_sharing != sharing:
            raise ValueError(f"{spec!r}: {path} is a {card_sharing!r} model, not {sharing!r}")
        pretrained[sharing] = path
    missing = [s for s in SHARING if s not in pretrained and any(sharing_of(row) == s for row in rows)]
    if missing:
        raise ValueError(f"--pretrained lacks {', '.join(missing)}: every row must start from the same pretraining")
    return pretrained


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The budget and start of this call, as every log line records them and :func:`check_settings` compares them."""
    return {key: getattr(args, key) for key in SETTINGS}


def check_settings(log: Path, expected: dict[str, Any]) -> None:
    """Refuse to add runs of another budget or start to a log that holds some: the table would average them.

    A setting an older line lacks is not compared (the first logs did not record ``finetune_epochs``),
    except ``pretrained``: runs from before pretraining existed started from scratch. Two calls that ran
    different ``--rows`` may name different sharing modes' starts; they agree if no mode has two starts.
    """
    for r in _runs(log):
        logged = {"pretrained": None, **{key: r[key] for key in SETTINGS if key in r}}
        differ = [f"{key}={value!r} (this call: {expected[key]!r})" for key, value in logged.items()
                  if not (_same_start(value, expected[key]) if key == "pretrained" else value == expected[key])]
        if differ:
            raise ValueError(f"{log} holds runs with {', '.join(differ)}; give another --out")


def _same_start(a: dict[str, str] | None, b: dict[str, str] | None) -> bool:
    """Both from scratch, or both pretrained with no sharing mode started from two different checkpoints."""
    if a is None or b is None:
        return a is b
    return all(a[mode] == b[mode] for mode in a.keys() & b.keys())


def _runs(log: Path) -> list[dict[str, Any]]:
    """Every finished run of the log, one JSON object a line; none before the first."""
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


def _select(log: Path, folds: list[int] | None = None, seeds: list[int] | None = None) -> list[dict[str, Any]]:
    """The runs of the log on these folds and seeds (all where None)."""
    return [r for r in _runs(log) if (folds is None or r["fold"] in folds) and (seeds is None or r["seed"] in seeds)]


def table(log: Path, folds: list[int] | None = None, seeds: list[int] | None = None) -> str:
    """Mean and standard deviation over folds and seeds, and over seeds of the fold means; then paired differences,
    the rows seed by seed, and macro-F1 and recall per class."""
    runs = _select(log, folds, seeds)
    by_row: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        by_row[r["row"]].append(r)
    lines = [
        "| row | runs (folds x seeds) | accuracy, mean ± std over runs | std of the seed means | macro-F1 | mean time per run |",
        "|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        rs = by_row.get(row, [])
        if not rs:
            continue
        accs = [100 * r["accuracy"] for r in rs]
        by_seed: dict[int, list[float]] = defaultdict(list)
        folds_of: dict[int, set[int]] = defaultdict(set)
        for r in rs:
            by_seed[r["seed"]].append(100 * r["accuracy"])
            folds_of[r["seed"]].add(r["fold"])
        # Seed means are comparable only over the same folds; a seed run on fewer folds is shown as such.
        same_folds = len({frozenset(f) for f in folds_of.values()}) == 1
        seed_means = [statistics.mean(v) for v in by_seed.values()]
        if len(seed_means) == 1:
            seed_std = "- (one seed)"
        else:
            seed_std = f"{statistics.stdev(seed_means):.2f}" if same_folds else "- (seeds ran on different folds)"
        coverage = (f"{len({r['fold'] for r in rs})} x {len(by_seed)}" if same_folds
                    else ", ".join(f"seed {s}: {len(f)} fold{'s' * (len(f) != 1)}" for s, f in sorted(folds_of.items())))
        # Runs logged before macro-F1 and recalls were recorded have neither: those columns show "-".
        f1 = [100 * r["macro_f1"] for r in rs if r.get("macro_f1") is not None]
        f1_text = f"{statistics.mean(f1):.2f}" if len(f1) == len(rs) else "-"
        lines.append(
            f"| {row} | {len(rs)} ({coverage}) | {statistics.mean(accs):.2f} ± "
            f"{statistics.stdev(accs) if len(accs) > 1 else 0:.2f} | {seed_std} | {f1_text} | "
            f"{statistics.mean(r['seconds'] for r in rs):.0f} s |"
        )
    # Sharing against single-task training; selective against hard sharing (the paper's claim); balancing
    # against its control, the same extra epochs on real faces. Then the rows seed by seed.
    # A block without pairs (a log of some rows only) is left out.
    for block in (_paired(by_row, "none", ROWS[1:]), _paired(by_row, "hard", ("selective",)),
                  _paired(by_row, "selective+ft", ("selective+balance",))):
        lines += ["", *block] if block else []
    lines += [*_per_seed(by_row), *_per_class(by_row)]
    return "\n".join(lines)


def _paired(by_row: dict[str, list[dict[str, Any]]], base_row: str, rows: tuple[str, ...]) -> list[str]:
    """Rows against ``base_row`` on the same fold and seed: a difference that the spread between folds cannot hide,
    with a 95 % interval for its mean (:func:`fold_bootstrap_ci`); an interval that excludes 0 is an ordering
    beyond the fold and seed noise."""
    base = {(r["fold"], r["seed"]): 100 * r["accuracy"] for r in by_row.get(base_row, [])}
    lines: list[str] = []
    for row in rows:
        by_fold: dict[int, list[float]] = defaultdict(list)
        for r in by_row.get(row, []):
            if (r["fold"], r["seed"]) in base:
                by_fold[r["fold"]].append(100 * r["accuracy"] - base[(r["fold"], r["seed"])])
        diffs = [d for ds in by_fold.values() for d in ds]
        if not diffs:
            continue
        std = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
        better, worse = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
        low, high = fold_bootstrap_ci(by_fold)
        lines.append(f"| {row} | {len(diffs)} | {statistics.mean(diffs):+.2f} ± {std:.2f} | "
                     f"[{low:+.2f}, {high:+.2f}] | {better} / {len(diffs) - better - worse} / {worse} |")
    if not lines:
        return []
    return [f"Paired with `{base_row}` on the same fold and seed (points):", "",
            "| row | pairs | mean difference ± std | 95 % interval (folds resampled) | better / equal / worse |",
            "|---|---|---|---|---|", *lines]


def fold_bootstrap_ci(by_fold: dict[int, list[float]], resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of the mean paired difference, resampling whole folds.

    The seeds of one fold test the same subjects, so they are not independent pairs: resampling folds (each
    with all its seeds) lets the interval widen with the fold-to-fold spread instead of treating 30 fold-seeds
    as 30 independent trials. Seeded, so a table prints the same interval every time. With a single fold the
    interval shrinks to that fold's mean: one fold says nothing of the spread between folds, and with few
    folds (six, say) a percentile interval comes out too narrow, so read it beside the number of folds.
    """
    folds = list(by_fold.values())
    rng = random.Random(seed)
    means = sorted(
        statistics.mean(d for ds in rng.choices(folds, k=len(folds)) for d in ds) for _ in range(resamples)
    )
    return means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def _per_seed(by_row: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Each row's mean seed by seed, over the folds every seed ran, and its paired difference to ``none``.

    An ordering that holds within every seed is beyond the seed noise; one that flips between seeds is not.
    Nothing is printed for a single seed or when the seeds share no fold.
    """
    acc = {(row, r["fold"], r["seed"]): 100 * r["accuracy"] for row, rs in by_row.items() for r in rs}
    seeds = sorted({s for _, _, s in acc})
    fold_sets = [{f for row, f, s in acc if row == "none" and s == seed} for seed in seeds]
    folds = sorted(set.intersection(*fold_sets)) if fold_sets else []
    if len(seeds) < 2 or not folds:
        return []
    lines = ["", (f"Seed by seed, over the {len(folds)} fold{'s' * (len(folds) != 1)} every seed ran "
                  "(mean accuracy, %, and the paired difference to `none` within the seed, points):"), "",
             "| row | " + " | ".join(f"seed {s}" for s in seeds) + " | "
             + " | ".join(f"vs none, seed {s}" for s in seeds) + " |",
             "|---|" + "---:|" * (2 * len(seeds))]
    for row in ROWS:
        if not any((row, f, s) in acc for f in folds for s in seeds):
            continue
        means, diffs = [], []
        for s in seeds:
            complete = all((row, f, s) in acc for f in folds)
            means.append(f"{statistics.mean(acc[(row, f, s)] for f in folds):.2f}" if complete else "-")
            paired = complete and row != "none"
            diffs.append(f"{statistics.mean(acc[(row, f, s)] - acc[('none', f, s)] for f in folds):+.2f}" if paired else "")
        lines.append(f"| {row} | " + " | ".join(means) + " | " + " | ".join(diffs) + " |")
    return lines


def _per_class(by_row: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Macro-F1 and recall per class, over the runs (fold and seed) where every row logged them.

    Older logs lack both; comparing the rows on the same runs keeps a rare class's recall from
    moving with which folds happened to be logged.
    """
    logged = {row: {(r["fold"], r["seed"]): r for r in by_row.get(row, [])
                    if r.get("per_class_recall") and r.get("macro_f1") is not None} for row in ROWS if by_row.get(row)}
    runs = set.intersection(*(set(by_fold) for by_fold in logged.values())) if logged else set()
    if not runs:
        return []
    classes = list(next(iter(logged.values()))[min(runs)]["per_class_recall"])
    lines = ["", (f"Macro-F1 and recall per class (%), mean over the {len(runs)} run{'s' * (len(runs) != 1)} "
                  "(fold and seed) where every row logged them:"), "",
             "| row | macro-F1 | " + " | ".join(classes) + " |", "|---|---:|" + "---:|" * len(classes)]
    for row, by_fold in logged.items():
        rs = [by_fold[run] for run in sorted(runs)]
        recalls = " | ".join(f"{statistics.mean(100 * r['per_class_recall'][c] for r in rs):.1f}" for c in classes)
        lines.append(f"| {row} | {statistics.mean(100 * r['macro_f1'] for r in rs):.2f} | {recalls} |")
    return lines


def plot(log: Path, path: Path, folds: list[int] | None = None, seeds: list[int] | None = None) -> None:
    """Accuracy of every fold and seed per row, one grey line per (fold, seed): paired differences at a glance."""
    from model_core.figures import pyplot

    runs = _select(log, folds, seeds)
    rows = [row for row in ROWS if any(r["row"] == row for r in runs)]
    by_pair: dict[tuple[int, int], dict[str, float]] = defaultdict(dict)
    for r in runs:
        by_pair[(r["fold"], r["seed"])][r["row"]] = 100 * r["accuracy"]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.4 * len(rows) + 1.5, 3.6))
    for accs in by_pair.values():
        xs = [i for i, row in enumerate(rows) if row in accs]
        ax.plot(xs, [accs[rows[i]] for i in xs], color="0.75", lw=0.8, marker="o", ms=3)
    means = [statistics.mean(a[row] for a in by_pair.values() if row in a) for row in rows]
    ax.plot(range(len(rows)), means, color="C3", lw=2, marker="D", label="mean")
    ax.set_xticks(range(len(rows)), rows, rotation=15)
    ax.set_ylabel("test-fold accuracy (%)")
    ax.set_title(f"CK+ {len({f for f, _ in by_pair})}-fold CV, {len({s for _, s in by_pair})} seed(s)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="../shared/data/ckplus48")
    parser.add_argument("--out", default="runs/ckplus_cv")
    parser.add_argument("--variant", default="fersnet_small")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--only-folds", type=int, nargs="*", help="run just these folds (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+",
                        help=f"seeds to run (default: {' '.join(map(str, DEFAULT_SEEDS))})")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--finetune-epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--rows", nargs="+", metavar="ROW",
                        help=f"run these rows only (default: all of {' '.join(ROWS)}); the selective+ rows "
                        "bring selective along")
    parser.add_argument("--pretrained", nargs="+", metavar="SHARING=CHECKPOINT",
                        help="start each row from a checkpoint of its sharing mode (none=, hard=, selective=: "
                        "one for each mode the rows train)")
    parser.add_argument("--keep", action="store_true", help="keep checkpoints and synthetic faces")
    parser.add_argument("--table", action="store_true",
                        help="only print the table of finished runs (of --only-folds and --seeds where given, "
                        "to compare logs on the same runs)")
    parser.add_argument("--plot", type=Path,
                        help="also plot every fold's accuracy per row to this PNG (the runs the table shows)")
    args = parser.parse_args()
    log = Path(args.out) / "results.jsonl"
    if not args.table:
        try:
            args.rows = parse_rows(args.rows)
            args.pretrained = parse_pretrained(args.pretrained, args.rows)
            check_settings(log, settings(args))
        except ValueError as exc:
            parser.error(str(exc))
        log.parent.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds if args.seeds is not None else DEFAULT_SEEDS:
            for fold in args.only_folds if args.only_folds is not None else range(args.folds):
                done = {(r["row"], r["fold"], r["seed"]) for r in _runs(log)}
                if all((row, fold, seed) in done for row in args.rows):
                    continue
                run_fold(args, fold, seed, done, log)
    # After a run the table shows the whole log; --table alone can narrow it to some folds and seeds.
    folds, seeds = (args.only_folds, args.seeds) if args.table else (None, None)
    print(table(log, folds, seeds))
    if args.plot:
        plot(log, args.plot, folds, seeds)
        print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()

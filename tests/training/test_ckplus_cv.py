"""The CK+ cross-validation driver: every row of a fold, a resumable log, and the table built from it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from training import ckplus_cv

from ..shared_fixtures import MakeCheckpoint


def _main(monkeypatch: pytest.MonkeyPatch, root: Path, out: Path, *extra: str) -> None:
    argv = ["ckplus_cv", "--root", str(root), "--out", str(out), "--variant", "fersnet_tiny", "--folds", "3",
            "--only-folds", "0", "--seeds", "0", "--epochs", "1", "--finetune-epochs", "1", "--batch-size", "8", *extra]
    monkeypatch.setattr(sys, "argv", argv)
    ckplus_cv.main()


def _refused(monkeypatch: pytest.MonkeyPatch, root: Path, out: Path, capsys: pytest.CaptureFixture[str],
             args: list[str], message: str) -> None:
    """The driver stops with a usage error that says ``message``."""
    with pytest.raises(SystemExit):
        _main(monkeypatch, root, out, *args)
    assert message in capsys.readouterr().err


def test_one_fold_runs_every_row_and_resumes(
    tmp_path: Path, ckplus_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cv"
    _main(monkeypatch, ckplus_root, out)
    runs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["row"] for r in runs] == list(ckplus_cv.ROWS)
    for r in runs:
        assert (r["fold"], r["seed"], r["epochs"]) == (0, 0, 1)
        assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["macro_f1"] <= 1.0
        assert set(r["per_class_recall"]) == {"angry", "contempt", "disgust", "fear", "happy", "sad", "surprise"}
    # Checkpoints and synthetic faces are deleted once measured.
    assert not any((out / "work").iterdir())

    table = capsys.readouterr().out
    for row in ckplus_cv.ROWS:
        assert f"| {row} | 1 (1 x 1) |" in table
    assert "Macro-F1 and recall per class (%), mean over the 1 run (fold and seed)" in table
    assert "| selective+balance | 1 |" in table and "Paired with `selective+ft`" in table

    # A second call finds every row of the fold done and trains nothing; it can also plot the log.
    _main(monkeypatch, ckplus_root, out, "--plot", str(tmp_path / "cv.png"))
    assert len((out / "results.jsonl").read_text().splitlines()) == len(ckplus_cv.ROWS)
    assert (tmp_path / "cv.png").stat().st_size > 0


def test_table_of_an_old_log_without_f1(tmp_path: Path) -> None:
    """Logs written before macro-F1 was recorded still make a table, with '-' where the figure is missing."""
    log = tmp_path / "results.jsonl"
    log.write_text("\n".join(json.dumps({"row": "none", "fold": f, "seed": 0, "accuracy": a, "seconds": 10.0})
                             for f, a in ((0, 0.9), (1, 0.8))) + "\n")
    table = ckplus_cv.table(log)
    assert "| none | 2 (2 x 1) | 85.00 ± 7.07 | - (one seed) | - | 10 s |" in table
    assert "recall per class" not in table


def test_table_says_when_seeds_ran_on_different_folds(tmp_path: Path) -> None:
    """A second seed run on some folds only: no std of seed means (it would mix fold difficulty with seed noise)."""
    log = tmp_path / "results.jsonl"
    runs = [(0, 0, 0.9), (1, 0, 0.8), (0, 1, 0.7)]
    log.write_text("\n".join(json.dumps({"row": "none", "fold": f, "seed": s, "accuracy": a, "seconds": 10.0})
                             for f, s, a in runs) + "\n")
    table = ckplus_cv.table(log)
    assert "| none | 3 (seed 0: 2 folds, seed 1: 1 fold) | 80.00 ± 10.00 | - (seeds ran on different folds) |" in table


def test_table_compares_rows_seed_by_seed_and_selective_with_hard(tmp_path: Path) -> None:
    """Per-seed means over the folds every seed ran, paired with `none`; selective paired with hard."""
    log = tmp_path / "results.jsonl"
    acc = {("none", 0): (0.9, 0.8), ("none", 1): (0.7, 0.6), ("hard", 0): (0.8, 0.8), ("hard", 1): (0.7, 0.5),
           ("selective", 0): (0.85, 0.9), ("selective", 1): (0.6, 0.6)}
    runs = [{"row": row, "fold": fold, "seed": seed, "accuracy": a, "seconds": 1.0}
            for (row, fold), seed_accs in acc.items() for seed, a in enumerate(seed_accs)]
    # A third seed on fold 0 only: it is left out of the seed-by-seed table, which needs every seed on a fold.
    runs.append({"row": "none", "fold": 0, "seed": 2, "accuracy": 0.5, "seconds": 1.0})
    log.write_text("\n".join(json.dumps(r) for r in runs) + "\n")
    table = ckplus_cv.table(log)
    assert "Paired with `hard`" in table and "| selective | 4 | +3.75 ± 9.46 | [+0.00, +7.50] | 3 / 0 / 1 |" in table
    assert "over the 1 fold every seed ran" in table
    assert "| none | 90.00 | 80.00 | 50.00 |  |  |  |" in table
    assert "| hard | 80.00 | 80.00 | - | -10.00 | +0.00 |  |" in table


def test_recall_per_class_compares_rows_on_the_runs_that_all_logged_it(tmp_path: Path) -> None:
    """A row whose older runs lack recall does not leave the others averaged over a different set of folds."""
    def run(row: str, fold: int, recall: float | None) -> dict[str, object]:
        logged = {"macro_f1": recall, "per_class_recall": {"fear": recall, "happy": 1.0}} if recall is not None else {}
        return {"row": row, "fold": fold, "seed": 0, "accuracy": 0.5, "seconds": 1.0, **logged}

    log = tmp_path / "results.jsonl"
    runs = [run("none", 0, 0.2), run("none", 1, 0.6), run("hard", 0, None), run("hard", 1, 0.4)]
    log.write_text("\n".join(json.dumps(r) for r in runs) + "\n")
    table = ckplus_cv.table(log)
    assert "mean over the 1 run (fold and seed) where every row logged them" in table
    assert "| row | macro-F1 | fear | happy |" in table
    assert "| none | 60.00 | 60.0 | 100.0 |" in table and "| hard | 40.00 | 40.0 | 100.0 |" in table


def test_table_of_some_folds_and_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--table --seeds --only-folds` narrows the table to those runs: two logs compared on the same folds."""
    out = tmp_path / "cv"
    out.mkdir()
    runs = [(0, 0, 0.9), (1, 0, 0.8), (0, 1, 0.7), (2, 0, 0.1)]
    (out / "results.jsonl").write_text("\n".join(json.dumps({"row": "none", "fold": f, "seed": s, "accuracy": a,
                                                            "seconds": 1.0}) for f, s, a in runs) + "\n")
    monkeypatch.setattr(sys, "argv", ["ckplus_cv", "--out", str(out), "--table", "--seeds", "0", "--only-folds", "0", "1"])
    ckplus_cv.main()
    assert "| none | 2 (2 x 1) | 85.00 ± 7.07 |" in capsys.readouterr().out


def _pretrained(make_checkpoint: MakeCheckpoint) -> list[str]:
    """One tiny FER2013-class checkpoint per sharing mode, as ``SHARING=PATH`` arguments."""
    return [f"{sharing}={make_checkpoint(f'pre_{sharing}', sharing=sharing)}" for sharing in ckplus_cv.SHARING]


def test_pretrained_rows_start_from_the_checkpoint_of_their_sharing(
    tmp_path: Path, ckplus_root: Path, make_checkpoint: MakeCheckpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = _pretrained(make_checkpoint)
    out = tmp_path / "cv"
    _main(monkeypatch, ckplus_root, out, "--keep", "--pretrained", *specs)
    expected = dict(spec.split("=", 1) for spec in specs)
    runs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["row"] for r in runs] == list(ckplus_cv.ROWS) and all(r["pretrained"] == expected for r in runs)
    for sharing in ckplus_cv.SHARING:
        card = json.loads((out / "work" / f"{sharing}_f0_s0" / "best" / "card.json").read_text())
        start = card["training"]["init_from"]
        assert start["checkpoint"] == expected[sharing]
        assert start["classes_fresh"] == ["contempt"] and "neutral" not in start["classes_copied"]


def test_pretraining_must_be_the_same_for_every_row_and_a_log_holds_one_setting(
    tmp_path: Path,
    ckplus_root: Path,
    make_checkpoint: MakeCheckpoint,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    none, hard, _ = _pretrained(make_checkpoint)
    out = tmp_path / "cv"
    for args, message in (
        ([none, hard], "--pretrained lacks selective"),
        ([none, hard, "selective=" + hard.split("=", 1)[1]], "is a 'hard' model, not 'selective'"),
        ([none, hard, f"selective={tmp_path / 'missing'}"], "missing"),
        ([none, hard, "shared=x"], "expected SHARING=CHECKPOINT"),
    ):
        _refused(monkeypatch, ckplus_root, out, capsys, ["--pretrained", *args], message)
    assert not (out / "results.jsonl").exists()

    log = out / "results.jsonl"
    log.parent.mkdir()
    log.write_text(json.dumps({"row": "none", "fold": 0, "seed": 0, "accuracy": 0.9, "variant": "fersnet_tiny",
                               "epochs": 2, "finetune_epochs": 1}) + "\n")
    _refused(monkeypatch, ckplus_root, out, capsys, [], "give another --out")  # --epochs 1 into a log of 2-epoch runs
    assert len(log.read_text().splitlines()) == 1


def test_some_rows_first_and_the_others_later_into_the_same_log(
    tmp_path: Path, ckplus_root: Path, make_checkpoint: MakeCheckpoint, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--rows`` spends a budget on the rows a question is about first: ``selective+ft`` brings ``selective``
    along and needs only the selective start; the other rows join the log later if each mode keeps its start."""
    specs = _pretrained(make_checkpoint)
    selective = specs[2]
    out = tmp_path / "cv"
    log = out / "results.jsonl"
    _main(monkeypatch, ckplus_root, out, "--rows", "selective+ft", "--pretrained", selective)
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["row"] for r in runs] == ["selective", "selective+ft"]
    assert all(r["pretrained"] == {"selective": selective.split("=", 1)[1]} for r in runs)
    table = capsys.readouterr().out
    assert "| selective+ft | 1 (1 x 1) |" in table and "Paired with" not in table  # no `none` or `hard` to pair with

    for args, message in (
        (["--rows", "none", "--pretrained", selective], "--pretrained lacks none"),
        (["--rows", "happy", "--pretrained", selective], "--rows: unknown 'happy'"),
        (["--pretrained", specs[0], specs[1], "selective=" + str(make_checkpoint("other", sharing="selective"))],
         "give another --out"),  # the selective row would start from another checkpoint
    ):
        _refused(monkeypatch, ckplus_root, out, capsys, args, message)
    assert len(log.read_text().splitlines()) == 2

    # A call of other rows leaves the selective model of the fold alone: a call beside it may be using it.
    in_use = out / "work" / "selective_f0_s0" / "best"
    in_use.mkdir(parents=True)
    _main(monkeypatch, ckplus_root, out, "--rows", "none", "--pretrained", specs[0])
    assert in_use.is_dir()
    in_use.rmdir()

    _main(monkeypatch, ckplus_root, out, "--pretrained", *specs)
    rows = [json.loads(line)["row"] for line in log.read_text().splitlines()]
    assert rows == ["selective", "selective+ft", "none", "hard", "selective+balance"]
    assert "Paired with `none`" in capsys.readouterr().out
    assert not any((out / "work").iterdir())  # the call that trained the selective model deleted it


def test_an_older_log_resumes_where_it_lacks_a_setting(tmp_path: Path) -> None:
    """The first logs recorded neither ``finetune_epochs`` nor ``pretrained``: their runs still count as from
    scratch with any fine-tuning budget, but not as pretrained ones."""
    log = tmp_path / "results.jsonl"
    log.write_text(json.dumps({"row": "none", "fold": 0, "seed": 0, "accuracy": 0.9, "variant": "fersnet_small",
                               "epochs": 10}) + "\n")
    settings = {"variant": "fersnet_small", "epochs": 10, "finetune_epochs": 3, "pretrained": None}
    ckplus_cv.check_settings(log, settings)
    with pytest.raises(ValueError, match="pretrained=None"):
        ckplus_cv.check_settings(log, {**settings, "pretrained": {"none": "a", "hard": "b", "selective": "c"}})


def test_the_paired_interval_resamples_folds_not_fold_seeds() -> None:
    """Seeds of one fold test the same subjects: two folds that disagree leave the sign open, however many seeds
    agree within each fold (resampling the six fold-seeds as independent pairs would exclude -10)."""
    assert ckplus_cv.fold_bootstrap_ci({0: [10.0] * 3, 1: [-10.0] * 3}) == (-10.0, 10.0)
    consistent = {fold: [1.0 + fold / 10, 1.5] for fold in range(10)}
    low, high = ckplus_cv.fold_bootstrap_ci(consistent)
    assert 1.0 < low < high < 1.95 and ckplus_cv.fold_bootstrap_ci(consistent) == (low, high)
    low, high = ckplus_cv.fold_bootstrap_ci({fold: [(-1.0) ** fold] for fold in range(10)})
    assert low < 0 < high

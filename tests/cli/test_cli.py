"""The fersnet command line, run as a user would: every subcommand, and its error messages."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from fersnet_cli.main import main
from model_core.expressions import FER2013_CLASSES, FERPLUS_CLASSES

from ..core.fakes import face, tiny_recipe
from ..shared_fixtures import MakeCheckpoint


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    main(list(argv))
    return capsys.readouterr().out


def test_info_lists_every_variant_with_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    rows = json.loads(run(capsys, "info", "--json"))
    variants = {(r["variant"], r["sharing"]) for r in rows}
    assert ("fersnet_paper", "selective") in variants and ("fersnet_small", "none") in variants
    paper = next(r for r in rows if r["variant"] == "fersnet_paper" and r["sharing"] == "selective")
    assert paper["parameters"] > 10_000_000 and paper["gates"] == 6 and paper["classify_gflops"] > 1
    assert "fersnet_tiny" in run(capsys, "info")


def test_info_on_a_checkpoint_summarises_its_card_and_json_gives_all_of_it(capsys: pytest.CaptureFixture[str]) -> None:
    summary = run(capsys, "info", "--checkpoint", "default")
    card = json.loads(run(capsys, "info", "--checkpoint", "default", "--json"))
    assert len(summary.splitlines()) < 30 and summary.startswith(f"{card['name']}: fersnet_small, selective sharing")
    assert f"temperature {card['calibration']['temperature']:g}; answers under the balanced prior" in summary
    assert "contempt" in summary.split("answers")[1].split("\n")[0] and "contempt" not in summary.split("draws")[1].split("\n")[0]
    ck = card["metrics"]["ckplus/all"]
    assert f"{100 * ck['accuracy']:.2f} %" in summary and f"({100 * ck['accuracy_restricted']:.2f} % restricted" in summary
    assert {"training", "metrics", "weights"} <= set(card)


@pytest.fixture
def trained(tmp_path: Path, fer2013_folder: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tmp_path, fer2013_folder, report=[])))
    out = run(capsys, "train", "--config", str(recipe), "--set", "optim.epochs=1")
    assert "best checkpoint" in out
    return tmp_path / "run" / "best"


def test_train_evaluate_synthesize_export(
    trained: Path, fer2013_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    card = json.loads((trained / "card.json").read_text())
    assert card["training"]["command"].startswith("fersnet train --config")
    result = json.loads(run(capsys, "evaluate", "--checkpoint", str(trained), "--dataset", "fer2013",
                            "--root", str(fer2013_folder), "--split", "val", "--json"))
    assert result["accuracy"] == pytest.approx(card["metrics"]["fer2013/val"]["accuracy"], abs=1e-4)
    assert 0 <= result["macro_f1"] <= 1 and len(result["confusion"]) == 7
    text = run(capsys, "evaluate", "--checkpoint", str(trained), "--dataset", "fer2013", "--root", str(fer2013_folder), "--split", "val")
    assert "macro-F1" in text and "confusion" in text

    face_path = tmp_path / "face.png"
    Image.fromarray(face(3, 0)).resize((120, 120)).save(face_path)
    run(capsys, "synthesize", str(face_path), "--checkpoint", str(trained), "--target", "happy,sadness", "--out", str(tmp_path / "syn"))
    assert sorted(p.name for p in (tmp_path / "syn").iterdir()) == ["face_happy.png", "face_sad.png"]
    assert Image.open(tmp_path / "syn" / "face_sad.png").size == (120, 120)  # the input redrawn at its own size
    run(capsys, "synthesize", str(face_path), "--checkpoint", str(trained), "--target", "sad", "--format", "face",
        "--out", str(tmp_path / "bare"))
    assert Image.open(tmp_path / "bare" / "face_sad.png").size == (48, 48)  # the bare model-sized face
    run(capsys, "synthesize", str(face_path), "--checkpoint", str(trained), "--grid", "--out", str(tmp_path / "grid.png"))
    run(capsys, "synthesize", str(face_path), "--checkpoint", str(trained), "--grid", "--target", "happy",
        "--out", str(tmp_path / "happy.png"))
    everything, happy = Image.open(tmp_path / "grid.png"), Image.open(tmp_path / "happy.png")
    assert everything.format == happy.format == "PNG" and happy.width < everything.width / 2  # two columns, not eight
    twin = tmp_path / "twin" / "face.png"  # another input of the same name: its files must not replace the first's
    twin.parent.mkdir()
    Image.fromarray(face(5, 0)).save(twin)
    run(capsys, "synthesize", str(face_path), str(twin), "--checkpoint", str(trained), "--target", "sad", "--out",
        str(tmp_path / "two"))
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["face-2_sad.png", "face_sad.png"]
    # Same names, other formats: each output says which input it came from; a target named twice is drawn once.
    Image.fromarray(face(5, 0)).save(tmp_path / "face.bmp")
    run(capsys, "synthesize", str(face_path), str(tmp_path / "face.bmp"), "--checkpoint", str(trained),
        "--target", "sad,sad", "--out", str(tmp_path / "kinds"))
    assert sorted(p.name for p in (tmp_path / "kinds").iterdir()) == ["face-bmp_sad.png", "face_sad.png"]
    album = tmp_path / "album" / "2024"  # a folder, as classify reads one: its subfolders too
    album.mkdir(parents=True)
    Image.fromarray(face(5, 0)).save(album / "portrait.png")
    run(capsys, "synthesize", str(tmp_path / "album"), "--checkpoint", str(trained), "--target", "sad",
        "--out", str(tmp_path / "from_folder"))
    assert [p.name for p in (tmp_path / "from_folder").iterdir()] == ["portrait_sad.png"]

    run(capsys, "export", "--checkpoint", str(trained), "--out", str(tmp_path / "half"), "--half")
    half = json.loads((tmp_path / "half" / "card.json").read_text())
    assert half["weights"]["dtype"] == "float16" and half["exported_from"] == card["weights"]["sha256"]
    out = run(capsys, "export", "--checkpoint", str(trained), "--out", str(tmp_path / "looks"), "--name", "looks",
              "--test-time-zooms", "1.05")
    assert "measure them again" in out
    looks = json.loads((tmp_path / "looks" / "card.json").read_text())
    assert looks["name"] == "looks" and looks["config"]["test_time_zooms"] == [1.05] and looks["metrics"] == {}
    run(capsys, "export", "--checkpoint", str(trained), "--format", "torch-export", "--out", str(tmp_path / "cls.pt2"))
    program = torch.export.load(str(tmp_path / "cls.pt2"))
    probs = program.module()(torch.zeros(3, 1, 48, 48))
    assert probs.shape == (3, 7) and torch.allclose(probs.sum(1), torch.ones(3), atol=1e-5)


def test_export_onnx_checks_the_graph_against_the_model(make_checkpoint: MakeCheckpoint, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """ONNX Runtime runs the written graph before the command calls it good; a graph that answers otherwise is
    removed and refused in one line, exit status 2."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    checkpoint = str(make_checkpoint())
    out = run(capsys, "export", "--checkpoint", checkpoint, "--format", "onnx", "--out", str(tmp_path / "cls.onnx"))
    assert "ONNX graph" in out and "answers as the model does within" in out and (tmp_path / "cls.onnx").is_file()

    from fersnet_cli.commands import export

    monkeypatch.setattr(export, "onnx_difference", lambda loaded, path: 0.3)
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--checkpoint", checkpoint, "--format", "onnx", "--out", str(tmp_path / "bad.onnx")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("fersnet: error:") and "bad.onnx" in err and "differ" in err and "Traceback" not in err
    assert not (tmp_path / "bad.onnx").exists()
    good = (tmp_path / "cls.onnx").read_bytes()  # a graph that fails its check leaves the good one at --out in place
    with pytest.raises(SystemExit):
        main(["export", "--checkpoint", checkpoint, "--format", "onnx", "--out", str(tmp_path / "cls.onnx")])
    assert (tmp_path / "cls.onnx").read_bytes() == good and not list(tmp_path.glob("*.unchecked"))
    capsys.readouterr()
    for options in (["--half"], ["--name", "x"]):  # safetensors' options, which a graph would ignore
        with pytest.raises(SystemExit):
            main(["export", "--checkpoint", checkpoint, "--format", "onnx", "--out", str(tmp_path / "x.onnx"), *options])
        assert f"{options[0]}: for --format safetensors only" in capsys.readouterr().err

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # the runtime missing: refused before anything is written
    with pytest.raises(SystemExit):
        main(["export", "--checkpoint", checkpoint, "--format", "onnx", "--out", str(tmp_path / "unchecked.onnx")])
    assert "fersnet[onnx]" in capsys.readouterr().err and not (tmp_path / "unchecked.onnx").exists()


def test_balance_command(trained: Path, tmp_path: Path, make_folder: Callable[[dict[str, int]], Path],
                         capsys: pytest.CaptureFixture[str]) -> None:
    root = make_folder({"happy": 6, "disgust": 1})
    out = run(capsys, "balance", "--checkpoint", str(trained), "--dataset", "folder", "--root", str(root),
              "--split", "all", "--out", str(tmp_path / "bal"))
    assert "wrote 5 faces" in out and (tmp_path / "bal" / "manifest.csv").is_file()


@pytest.mark.parametrize(
    "argv,message",
    [
        (["evaluate", "--checkpoint", "/no/such/ckpt", "--dataset", "fer2013", "--root", "x", "--split", "val"], "/no/such/ckpt"),
        (["evaluate", "--dataset", "fer2013", "--root", "/no/such/data", "--split", "val"], "/no/such/data"),
        (["train", "--config", "/no/such/recipe.yaml"], "/no/such/recipe.yaml"),
        (["synthesize", "/no/such/face.png", "--out", "/tmp/x"], "/no/such/face.png"),
    ],
)
def test_user_errors_are_one_line_naming_the_file(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("fersnet: error:") and message in err and "Traceback" not in err


def test_paths_the_system_refuses_are_one_line_naming_them(
    make_checkpoint: MakeCheckpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file where a folder is wanted, a folder where a file is, bytes that are not text: one line, exit 2."""
    checkpoint = make_checkpoint("plain")
    face_path, taken = tmp_path / "face.png", tmp_path / "taken.txt"
    Image.fromarray(face(3, 0)).save(face_path)
    taken.write_text("not a folder")
    binary = tmp_path / "recipe.yaml"
    binary.write_bytes(b"\xff\xfe\x00model")
    folder_card = tmp_path / "folder_card"
    (folder_card / "card.json").mkdir(parents=True)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    cases = [
        (["synthesize", str(face_path), "--checkpoint", str(checkpoint), "--target", "happy", "--out", str(taken / "sub")],
         f"--out {taken / 'sub'}: cannot make folder {taken / 'sub'} (Not a directory)"),
        (["classify", str(empty), "--checkpoint", str(checkpoint)], f"{empty}: an empty file"),
        (["synthesize", str(face_path), "--checkpoint", str(checkpoint), "--target", "happy", "--out", str(taken)],
         f"--out {taken}: a file; the redrawn faces are written into a folder"),
        (["synthesize", str(face_path), "--checkpoint", str(checkpoint), "--grid", "--out", str(tmp_path)],
         f"--out {tmp_path}: a folder; --grid writes one PNG file"),
        (["synthesize", str(face_path), "--checkpoint", str(checkpoint), "--grid", "--format", "face", "--out",
          str(tmp_path / "g.png")], "--format face: --grid draws the model-sized faces into one PNG"),
        (["train", "--config", str(tmp_path)], f"{tmp_path}: a folder, not a config file"),
        (["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path)], f"--out {tmp_path}: a folder holding other files"),
        (["train", "--config", str(binary)], f"{binary}: not a text file"),
        (["info", "--checkpoint", str(folder_card)], "card.json: a folder, not a model card"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("fersnet: error:") and message in err and "Errno" not in err, err
        assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("argv,message", [
    (["info", "--checkpoint", ""], "argument --checkpoint: empty"),
    (["info", "--variant", "fersnet_tiny", "--checkpoint", "default"], "not allowed with argument --variant"),
])
def test_info_refuses_what_it_would_ignore(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_serve_takes_the_service_options(capsys: pytest.CaptureFixture[str]) -> None:
    """`fersnet serve --host H --port P` (the same as `python -m service`, which `make serve` runs) reaches the service's own parser."""
    with pytest.raises(SystemExit) as done:
        main(["serve", "--host", "127.0.0.1", "--port", "8000", "--help"])
    assert done.value.code == 0
    usage = capsys.readouterr().out
    assert usage.startswith("usage: fersnet serve") and "--max-batch-size" in usage


def test_synthesize_draws_the_expressions_of_a_two_head_model(
    make_checkpoint: MakeCheckpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its targets are the expression head's seven: all of them, and never the answer tail's contempt."""
    checkpoint = make_checkpoint("two-heads", answer=FERPLUS_CLASSES)
    face_path = tmp_path / "face.png"
    Image.fromarray(face(3, 0)).save(face_path)
    run(capsys, "synthesize", str(face_path), "--checkpoint", str(checkpoint), "--format", "face", "--out", str(tmp_path / "all"))
    assert sorted(p.stem for p in (tmp_path / "all").iterdir()) == sorted(f"face_{c}" for c in FER2013_CLASSES)
    with pytest.raises(SystemExit) as exit_info:
        main(["synthesize", str(face_path), "--checkpoint", str(checkpoint), "--target", "contempt", "--out", str(tmp_path / "no")])
    assert exit_info.value.code == 2  # a user's error, as every other
    assert "--target: the model cannot draw 'contempt' (it draws angry, disgust" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # an unknown name lists what it draws, not every class any dataset has
        main(["synthesize", str(face_path), "--checkpoint", str(checkpoint), "--target", "sad,joy2", "--out", str(tmp_path / "no")])
    err = capsys.readouterr().err
    assert "--target: unknown expression 'joy2'; the model draws angry, disgust" in err and "contempt" not in err


def test_synthesize_takes_an_intensity_and_refuses_one_out_of_range(
    make_checkpoint: MakeCheckpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--intensity 0 leaves every target's face as it came in; past 3 is refused before anything loads."""
    checkpoint = make_checkpoint("one-head")
    face_path = tmp_path / "face.png"
    Image.fromarray(face(3, 0)).save(face_path)
    run(capsys, "synthesize", str(face_path), "--checkpoint", str(checkpoint), "--format", "face", "--target", "happy,sad",
        "--intensity", "0", "--out", str(tmp_path / "none"))
    happy, sad = (np.asarray(Image.open(tmp_path / "none" / f"face_{t}.png")) for t in ("happy", "sad"))
    assert np.array_equal(happy, sad)
    with pytest.raises(SystemExit) as refused:
        main(["synthesize", str(face_path), "--intensity", "4", "--out", str(tmp_path / "no")])
    assert refused.value.code == 2 and "--intensity: 4 is outside 0 to 3" in capsys.readouterr().err


def test_skip_bad_says_what_it_skipped_in_the_text_report_too(
    make_checkpoint: MakeCheckpoint, make_folder: Callable[[dict[str, int]], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_folder({"happy": 3, "sad": 3})
    (root / "sad" / "broken.png").write_bytes(b"not an image")
    out = run(capsys, "evaluate", "--checkpoint", str(make_checkpoint("plain")), "--dataset", "folder", "--root", str(root),
              "--split", "all", "--skip-bad")
    assert "skipped 1 file(s) that could not be read (--skip-bad); the first:" in out and "broken.png" in out


def test_counts_below_one_and_splits_without_some_class_are_one_line(
    make_checkpoint: MakeCheckpoint, make_folder: Callable[[dict[str, int]], Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint = str(make_checkpoint("plain"))
    root = make_folder({"happy": 2, "sad": 2})
    data = ["--dataset", "folder", "--root", str(root), "--split", "all"]
    cases = [
        (["evaluate", "--checkpoint", checkpoint, *data, "--batch-size", "0"], "--batch-size: 0 is not 1 or more"),
        (["compare", checkpoint, "--against", checkpoint, *data, "--resamples", "0"], "--resamples: 0 is not 1 or more"),
        (["prior", checkpoint, *data], "no target of class angry"),
        (["teacher-targets", "--checkpoint", checkpoint, *data, "--out", str(tmp_path)], "a folder, not a teacher-targets file"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in err and "Traceback" not in err, (argv, err)
    assert not list(tmp_path.glob("*.tmp"))

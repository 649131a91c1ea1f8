""".dockerignore: the build context holds the code and the bundled model, and never data, runs, caches or environments."""

from __future__ import annotations

from .helpers import ROOT, build_context, dockerignore_rules, is_excluded


def test_pattern_semantics():
    """The matcher used below behaves like docker's on the cases that matter here."""
    rules = dockerignore_rules()
    assert is_excluded("data/fer2013/train/angry/1.jpg", rules)
    assert is_excluded("runs/fer2013_small/last.safetensors", rules)
    assert is_excluded(".venv/bin/python", rules)
    assert is_excluded(".git/HEAD", rules)
    assert is_excluded("service/__pycache__/app.cpython-311.pyc", rules)
    assert is_excluded("model_core/data/fer2013/sample.png", rules)
    assert is_excluded("training/runs/x/model.safetensors", rules)
    assert is_excluded("model_core/weights/experiment/model.safetensors", rules)
    assert is_excluded("model_core/weights/fer2013_paper_gpu/model.safetensors.part-00", rules)
    assert is_excluded("model_core/weights/fer2013_paper_none_gpu/model.safetensors.part-00", rules)
    assert is_excluded("tests/deploy/test_dockerignore.py", rules)
    assert is_excluded("training/teachers/02_vgg_s0/fer2013.csv.gz", rules)  # per-face numbers drawn from the datasets
    assert is_excluded("training/teachers/02_vgg_s0/command.txt", rules)
    assert not is_excluded("model_core/weights/default/model.safetensors", rules)
    assert not is_excluded("model_core/weights/default/card.json", rules)
    assert not is_excluded("service/app.py", rules)
    assert not is_excluded("pyproject.toml", rules)


def test_context_contains_what_the_image_needs():
    context = set(build_context())
    assert "pyproject.toml" in context
    assert "model_core/weights/default/model.safetensors" in context
    assert "model_core/weights/default/card.json" in context
    for package in ("model_core", "training", "service", "fersnet_cli"):
        assert f"{package}/__init__.py" in context
    page = [p.relative_to(ROOT).as_posix() for p in (ROOT / "service" / "static").iterdir()]
    assert "service/static/index.html" in page
    assert set(page) <= context, "the web page's files must reach the image"


def test_context_excludes_data_caches_and_environments():
    context = build_context()
    # Top-level trees that never belong in an image (model_core/data/ is code and may).
    banned_top = {"data", "runs", ".venv", "venv", ".git", "tests", "bench", "docs", "deploy", "docker", "shared"}
    banned_anywhere = {"__pycache__", ".pytest_cache", "runs", ".ipynb_checkpoints"}
    for path in context:
        parts = path.split("/")
        assert parts[0] not in banned_top, f"{path} would be sent to the Docker daemon"
        assert not banned_anywhere & set(parts[:-1]), f"{path} would be sent to the Docker daemon"
        assert not any(p.endswith(".egg-info") for p in parts), path
        assert not path.endswith((".pyc", ".jpg", ".jpeg", ".png", ".csv", ".npz", ".zip", ".pt", ".pth", ".ckpt")), path
    # Only the bundled model's weights, nothing trained locally.
    assert [p for p in context if p.endswith(".safetensors")] == ["model_core/weights/default/model.safetensors"]


def test_context_is_small():
    """Code plus the bundled model: a few MB. Anything bigger means something slipped through."""
    size = sum((ROOT / p).stat().st_size for p in build_context())
    assert size < 30 * 1024 * 1024, f"build context is {size / 1e6:.1f} MB"

"""bench/gpu_serve.sh on the CPU, as on a GPU image without YuNet: the service starts without its detector, and the
benchmark's table comes back; without the web stack the script says what to do instead of failing halfway."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: sitecustomize for the script's Pythons (the benchmark and the server it starts): these modules cannot be imported.
BLOCKER = '''
import sys
class _Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {NAMES}:
            raise ImportError(f"{name} is not on this image")
sys.meta_path.insert(0, _Absent())
'''


def run_script(tmp_path: Path, blocked: set[str], *args: str) -> subprocess.CompletedProcess[str]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER.replace("{NAMES}", repr(blocked)))
    env = os.environ | {"OUT": str(tmp_path / "out"), "PYTHON": sys.executable, "PYTHONPATH": str(site),
                        "WHEELS": str(tmp_path / "no-wheels"), "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(REPO / "bench" / "gpu_serve.sh"), *args], env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_without_yunet_the_benchmark_runs_and_leaves_its_table(tmp_path: Path) -> None:
    done = run_script(tmp_path, {"yuface"}, "--device", "cpu", "--faces", "16", "--clients", "2", "--seconds", "1",
                      "--warmup-seconds", "0.5", "--no-half-load", "--torch-threads", "1")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = (tmp_path / "out" / "serve.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| 16 faces | 2 | cpu"))
    assert row.endswith("| 0 |")  # every request answered 200
    assert "wall time:" in table and (tmp_path / "out" / "gpu.txt").is_file()


def test_without_the_web_stack_it_says_how_to_bring_it(tmp_path: Path) -> None:
    done = run_script(tmp_path, {"fastapi"}, "--device", "cpu")
    assert done.returncode == 2
    assert "run bash bench/host_wheels.sh where pip works, and carry .whl" in done.stderr

"""Would the served answer gain from the expression head mixed into it? Accuracy by mixing weight, per split.

A two-head checkpoint serves its answer tail (FER+'s eight classes, fitted on
the raters' votes) and keeps the expression head (FER2013's seven, fitted on
FER2013's labels) for synthesis and the literature. The two carry differently
to posed faces: on CK+48 the expression head recognises more angry and fear
faces, the tail more disgust. This scores, on each split given,

    (1 - w) * served probabilities + w * expression-head probabilities

for several ``w``, contempt (which the expression head lacks) at 0 on its
side. The served probabilities are the user's answer (the card's temperature
and prior); the expression head's a plain softmax, both over the model's looks
at each face. A weight is chosen on a validation split (FER+ validation for
the served head), never on a test split or on CK+48; the other splits are
only measured.

    python -m bench.head_mix --split ferplus:val:../shared/data/ferplus --split ckplus:all:../shared/data/ckplus48

Prints a markdown table: one row per weight, one column per split.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from model_core import load_checkpoint  # noqa: E402
from model_core.checkpoint import LoadedModel  # noqa: E402
from model_core.data import load_records  # noqa: E402
from model_core.data.dataset import FaceDataset  # noqa: E402
from model_core.expressions import FER2013_CLASSES  # noqa: E402

WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


@torch.inference_mode()
def both_heads(loaded: LoadedModel, dataset: str, root: str, split: str, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The split's served probabilities, its expression head's spread over the served classes, and the labels as
    indices into the served classes (-1 for a label the model lacks, which counts as wrong whatever it answers)."""
    records = load_records(dataset, root, split)
    faces = FaceDataset(records, loaded.preprocess, classes=records.classes)
    served, expression = [], []
    for start in range(0, len(faces), batch_size):
        images = torch.stack([faces[i][0] for i in range(start, min(len(faces), start + batch_size))])
        logits = loaded.model.classify_heads(images)
        served.append(loaded.probabilities(logits["served"]).float())
        expression.append(logits["expression"].float().softmax(1))
    classes = list(loaded.classes)
    spread = np.zeros((len(faces), len(classes)), dtype=np.float32)
    spread[:, [classes.index(c) for c in FER2013_CLASSES]] = torch.cat(expression).numpy()
    labels = np.array([classes.index(c) if c in classes else -1 for c in np.array(records.classes)[faces.labels]])
    return torch.cat(served).numpy(), spread, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="default", help="a two-head checkpoint (default: the bundled default)")
    parser.add_argument("--split", action="append", required=True, metavar="DATASET:SPLIT:ROOT")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_checkpoint(args.checkpoint)
    if not loaded.model.has_answer_tail:
        raise SystemExit(f"{args.checkpoint}: one head only; nothing to mix")
    loaded.model.eval()
    columns = {}
    for spec in args.split:
        dataset, split, root = spec.split(":", 2)
        columns[f"{dataset}/{split}"] = both_heads(loaded, dataset, root, split)
    print("| expression head's weight | " + " | ".join(columns) + " |")
    print("| ---: |" + " ---: |" * len(columns))
    for w in WEIGHTS:
        cells = [f"{100 * (((1 - w) * served + w * spread).argmax(1) == labels).mean():.2f} %"
                 for served, spread, labels in columns.values()]
        print(f"| {w:.1f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

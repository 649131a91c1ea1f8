"""``fersnet info``: every variant with its parameters, gates and FLOPs, or one checkpoint's card."""

from __future__ import annotations

import argparse
import json
import shlex
from typing import Any

from model_core import LoadedModel, create_model, list_variants, load_checkpoint
from model_core.fersnet import SHARING_MODES, count_flops

from ..args import CHECKPOINT_HELP


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="list variants with parameter counts and FLOPs, or show a checkpoint's card")
    which = p.add_mutually_exclusive_group()  # a card is one checkpoint's; the table, one or every variant's
    which.add_argument("--variant", choices=list_variants())
    which.add_argument("--checkpoint", type=non_empty, help="show this checkpoint's model card instead (" + CHECKPOINT_HELP + ")")
    p.add_argument("--json", action="store_true", help="the table, or the whole model card, as JSON")
    p.set_defaults(func=run)


def non_empty(text: str) -> str:
    """``--checkpoint``'s value: an empty one (an unset shell variable, say) is refused rather than read as absent."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty; name a checkpoint folder or a bundled model")
    return text


def variant_row(variant: str, sharing: str) -> dict[str, Any]:
    """One row of the table: a freshly built network of ``variant`` with ``sharing``, measured."""
    model = create_model(variant, sharing=sharing)
    cfg = model.config
    return {
        "variant": variant,
        "sharing": sharing,
        "input": f"{cfg.img_size}x{cfg.img_size}x{cfg.in_chans}",
        "parameters": sum(p.numel() for p in model.parameters()),
        "gates": len(model.gates) * 2,
        "classify_gflops": count_flops(model, synthesis=False) / 1e9,
        "synthesize_gflops": count_flops(model, synthesis=True) / 1e9 if model.has_synthesis else None,
    }


def card_summary(loaded: LoadedModel, named: str) -> str:
    """What a person asks of a checkpoint first: what it is, what it answers and draws, how it answers, and what it
    measured (accuracy and macro-F1 per split, the restricted accuracy beside it where a set lacks some classes)."""
    card, weights = loaded.card, loaded.card.to_json()["weights"]
    drawn = (f"{', '.join(loaded.expressions)}, at intensity {loaded.intensity:g}" if loaded.model.has_synthesis
             else "nothing (no synthesis branch)")
    rows = {
        "folder": str(loaded.path),
        "weights": f"{weights['file']}, {weights['bytes'] / 2**20:.1f} MiB {weights.get('dtype', '')}, "
                   f"sha256 {loaded.sha256[:16]}...",
        "answers": ", ".join(loaded.classes),
        "draws": drawn,
        "calibrated": f"temperature {loaded.temperature:g}; answers under the {loaded.prior} prior "
                      f"(a request may name {' or '.join(loaded.priors)})",
    }
    lines = [
        f"{card.name}: {card.variant}, {card.sharing} sharing, {card.parameters / 1e6:.2f} M parameters"
        + (" (with its answer tail)" if loaded.model.config.answer_classes else "")
        + f", {loaded.preprocess.img_size}x{loaded.preprocess.img_size} {'grey' if loaded.preprocess.in_chans == 1 else 'RGB'}",
        *(f"  {label:<12}{value}" for label, value in rows.items()),
    ]
    if card.metrics:
        lines.append(f"  {'measured':<12}{'split':<36}accuracy  macro-F1")
        for split, m in card.metrics.items():
            restricted = m.get("accuracy_restricted")
            extra = f"  ({100 * restricted:.2f} % restricted to the set's classes)" if restricted is not None else ""
            extra += f"  [{m['prior']} prior]" if m.get("prior", loaded.prior) != loaded.prior else ""
            lines.append(f"  {'':<12}{split:<36}{100 * m['accuracy']:>6.2f} %{100 * m['macro_f1']:>8.2f} %{extra}")
    lines.append(f"The whole card: fersnet info --checkpoint {shlex.quote(named)} --json")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> None:
    if args.checkpoint is not None:
        loaded = load_checkpoint(args.checkpoint)
        print(json.dumps(loaded.card.to_json(), indent=2) if args.json else card_summary(loaded, args.checkpoint))
        return
    rows = [variant_row(v, s) for v in ([args.variant] if args.variant else list_variants()) for s in SHARING_MODES]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'variant':<15}{'sharing':<11}{'input':<10}{'params':>10}{'ConvFLUs':>9}{'GFLOPs classify':>17}"
          f"{'GFLOPs synth.':>15}")
    for r in rows:
        synth = f"{r['synthesize_gflops']:.3f}" if r["synthesize_gflops"] is not None else "-"
        print(f"{r['variant']:<15}{r['sharing']:<11}{r['input']:<10}{r['parameters'] / 1e6:>9.2f}M{r['gates']:>9}"
              f"{r['classify_gflops']:>17.3f}{synth:>15}")
    print("\nConvFLUs: gates in both directions, one per stage and direction, each with its own weights."
          "\nFLOPs: per image, as counted by torch.utils.flop_counter (a multiply-add counts as 2).")

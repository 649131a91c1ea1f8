"""ConvFLU computes exactly the paper's equations."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from model_core.gates import ConvFLU, GatePair


def test_convflu_matches_the_paper() -> None:
    torch.manual_seed(0)
    gate = ConvFLU(4)
    fx, fy = torch.randn(2, 4, 6, 6), torch.randn(2, 4, 6, 6)
    out = gate(fx, fy)

    def conv(layer: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, layer.weight, padding=1)

    r = torch.sigmoid(conv(gate.w_r, torch.cat([fx, fy], 1)))
    candidate = torch.tanh(conv(gate.w, r * fy) + conv(gate.u, fx))
    z = torch.sigmoid(conv(gate.w_z, torch.cat([fx, fy], 1)))
    assert torch.allclose(out.features, (1 - z) * fx + z * candidate, atol=1e-6)
    assert torch.allclose(out.reset, r) and torch.allclose(out.update, z)
    assert all(layer.bias is None for layer in (gate.w_r, gate.w_z, gate.w, gate.u))


def test_closed_update_gate_keeps_the_receiving_features() -> None:
    gate = ConvFLU(3)
    torch.nn.init.zeros_(gate.w_z.weight)
    fx = torch.randn(1, 3, 5, 5)
    # z = sigmoid(0) = 0.5 everywhere: the output is halfway between F_x and the candidate.
    out = gate(fx, torch.randn(1, 3, 5, 5))
    assert torch.allclose(out.update, torch.full_like(out.update, 0.5))


def test_gate_pair_reads_both_inputs_before_either_changes() -> None:
    pair = GatePair(3)
    fer, fes = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    into_fer, into_fes = pair(fer, fes)
    assert torch.allclose(into_fer.features, pair.into_fer(fer, fes).features)
    assert torch.allclose(into_fes.features, pair.into_fes(fes, fer).features)

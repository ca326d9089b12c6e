"""Weight averages (eval.ema) on hand-built weights: the formula, constant weights, the swap, a pack's members."""

from __future__ import annotations

import pytest
import torch

from grokking.ema import WeightAverages, check_decays, ema_suffix


def test_the_average_of_constant_weights_is_those_weights():
    weights = {"w": torch.randn(3, 4), "b": torch.randn(4)}
    averages = WeightAverages(weights, [0.9, 0.999], members=None)
    for _ in range(50):
        averages.update()
    for decay in (0.9, 0.999):
        assert all(torch.equal(averages.averages[decay][n], w) for n, w in weights.items())


def test_the_average_follows_the_formula_from_the_initial_weights():
    weights = {"w": torch.zeros(2)}
    averages = WeightAverages(weights, [0.9], members=None)
    weights["w"].fill_(1.0)  # a step to 1, then constant: the average is 1 - 0.9^n after n updates
    for n in range(1, 6):
        averages.update()
        assert averages.averages[0.9]["w"] == pytest.approx(torch.full((2,), 1 - 0.9**n), rel=1e-6)


def test_swapped_in_weights_hold_the_average_and_get_their_own_values_back_exactly():
    weights = {"w": torch.randn(5)}
    own = weights["w"].clone()
    averages = WeightAverages(weights, [0.5], members=None)
    weights["w"].add_(1.0)
    averages.update()
    moved = weights["w"].clone()
    with averages.swapped_in(0.5):
        assert torch.equal(weights["w"], averages.averages[0.5]["w"])
        assert torch.allclose(weights["w"], own + 0.5)
    assert torch.equal(weights["w"], moved)
    with pytest.raises(RuntimeError), averages.swapped_in(0.5):  # an error inside the block restores them too
        raise RuntimeError
    assert torch.equal(weights["w"], moved)


def test_a_pack_member_averages_and_saves_what_its_single_run_does():
    singles = [{"w": torch.randn(3, 2)} for _ in range(3)]
    stacked = {"w": torch.stack([s["w"] for s in singles]).clone()}
    pack = WeightAverages(stacked, [0.99], members=3)
    alone = [WeightAverages(s, [0.99], members=None) for s in singles]
    for _ in range(10):
        delta = torch.randn(3, 3, 2)
        stacked["w"].add_(delta)
        for k, s in enumerate(singles):
            s["w"].add_(delta[k])
        pack.update()
        for a in alone:
            a.update()
    for k in range(3):
        assert torch.allclose(pack.member_state(k)["0.99"]["w"], alone[k].member_state(0)["0.99"]["w"], rtol=1e-6)
    # a member resumed from its checkpoint holds its saved average; one without a saved average starts from its weights
    fresh = WeightAverages(stacked, [0.99], members=3)
    fresh.load_member(1, alone[1].member_state(0), "test")
    fresh.load_member(2, None, "test")
    assert torch.equal(fresh.averages[0.99]["w"][1], alone[1].averages[0.99]["w"])
    assert torch.equal(fresh.averages[0.99]["w"][2], stacked["w"][2])
    # a member leaving the pack takes its average with it
    fresh.drop(0, {"w": stacked["w"][1:].clone()})
    assert fresh.members == 2 and torch.equal(fresh.averages[0.99]["w"][0], alone[1].averages[0.99]["w"])


def test_decays_are_checked_and_named():
    assert ema_suffix(0.999) == "_ema0.999" and ema_suffix(0.9999) == "_ema0.9999"
    assert check_decays([0.99, 0.999]) == [0.99, 0.999]
    for bad in ([1.0], [0.0], [-0.5], [0.99, 0.99]):
        with pytest.raises(ValueError):
            check_decays(bad)

"""PackedLM: K stacked members train exactly as K single models (losses, clipping, AdamW, checkpoint layout)."""

import copy

import pytest
import torch
import torch.nn.functional as F

from grokking.model import ModelShape, TransformerLM
from grokking.pack import PackedLM

SEEDS = (42, 52, 62)


def shape(**overrides) -> ModelShape:
    return ModelShape(**{"vocab_size": 30, "d_model": 32, "n_heads": 4, "d_ff": 64, "n_layers": 2, "dropout": 0.0,
                         "attn_dropout": 0.0, **overrides})


def build(seed: int, model_shape: ModelShape) -> TransformerLM:
    torch.manual_seed(seed)
    return TransformerLM(model_shape)


def batches(step: int, k: int = len(SEEDS)) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One right-padded batch per member, of different lengths and padding."""
    generator = torch.Generator().manual_seed(step)
    out = []
    for _ in range(k):
        length = int(torch.randint(4, 12, (1,), generator=generator))
        ids = torch.randint(1, 30, (5, length), generator=generator)
        targets = ids.roll(-1, 1)
        targets[0, -3:] = -100  # a shorter row
        out.append((ids, targets))
    return out


def stacked(pairs):
    width = max(ids.shape[1] for ids, _ in pairs)
    return (torch.stack([F.pad(ids, (0, width - ids.shape[1])) for ids, _ in pairs]),
            torch.stack([F.pad(t, (0, width - t.shape[1]), value=-100) for _, t in pairs]))


@pytest.mark.parametrize("tied", [False, True])
def test_pack_trains_exactly_as_its_single_models(tied):
    model_shape = shape(tied_output=tied, output_bias=not tied)
    singles = [build(s, model_shape) for s in SEEDS]
    pack = PackedLM([build(s, model_shape) for s in SEEDS])
    optimizers = [torch.optim.AdamW(m.parameters(), lr=3e-3, weight_decay=0.1, fused=True) for m in singles]
    pack_optimizer = torch.optim.AdamW(pack.parameters(), lr=3e-3, weight_decay=0.1, fused=True)
    for step in range(8):
        pairs = batches(step)
        single_losses, single_norms = [], []
        for model, optimizer, (ids, targets) in zip(singles, optimizers, pairs, strict=True):
            loss = model.loss(ids, targets)
            optimizer.zero_grad()
            loss.backward()
            single_norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)))
            optimizer.step()
            single_losses.append(float(loss))
        losses = pack.loss(*stacked(pairs))
        pack_optimizer.zero_grad()
        losses.sum().backward()
        norms = pack.clip_grad_norms_(0.5)
        pack_optimizer.step()
        assert losses.tolist() == pytest.approx(single_losses, rel=1e-5)
        assert norms.tolist() == pytest.approx(single_norms, rel=1e-4)
    for k, single in enumerate(singles):
        member = pack.member_model(k, TransformerLM(model_shape))
        assert member.state_dict().keys() == single.state_dict().keys()
        for name, value in single.state_dict().items():  # Adam turns float noise on tiny gradients into ~lr steps
            assert torch.allclose(member.state_dict()[name], value, atol=1e-4), name


def test_members_start_from_their_single_runs_initialisation():
    pack = PackedLM([build(s, shape()) for s in SEEDS])
    for k, seed in enumerate(SEEDS):
        member = pack.member_model(k, TransformerLM(shape()))
        assert all(torch.equal(member.state_dict()[n], v) for n, v in build(seed, shape()).state_dict().items())


def test_optimizer_state_round_trip_and_resume_from_member_states():
    """Members saved in the single-run layout and stacked again continue exactly as the uninterrupted pack."""
    model_shape = shape()
    pack = PackedLM([build(s, model_shape) for s in SEEDS])
    optimizer = torch.optim.AdamW(pack.parameters(), lr=3e-3, fused=True)

    def step(p, opt, n):
        loss = p.loss(*stacked(batches(n)))
        opt.zero_grad()
        loss.sum().backward()
        p.clip_grad_norms_(1.0)
        opt.step()

    for n in range(3):
        step(pack, optimizer, n)
    models = [pack.member_model(k, TransformerLM(model_shape)) for k in range(3)]
    states = [pack.member_optimizer_state(optimizer.state_dict(), k) for k in range(3)]
    alone = copy.deepcopy(models[1])
    single = torch.optim.AdamW(alone.parameters(), lr=3e-3, fused=True)
    single.load_state_dict(states[1])  # a member's state is a single run's AdamW state, parameter by parameter

    resumed = PackedLM([build(0, model_shape) for _ in SEEDS])
    for k, model in enumerate(models):
        resumed.load_member(k, model)
    resumed_optimizer = torch.optim.AdamW(resumed.parameters(), lr=3e-3, fused=True)
    resumed_optimizer.load_state_dict(resumed.stacked_optimizer_state(states))
    for n in range(3, 5):
        step(pack, optimizer, n)
        step(resumed, resumed_optimizer, n)
        ids, targets = batches(n)[1]
        loss = alone.loss(ids, targets)
        single.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(alone.parameters(), 1.0)
        single.step()
    for a, b in zip(pack.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    member = pack.member_model(1, TransformerLM(model_shape))
    for name, value in alone.state_dict().items():  # the member resumed alone continues as in the pack
        assert torch.allclose(member.state_dict()[name], value, atol=1e-5), name


def test_members_draw_independent_dropout_masks():
    """Identical members on identical batches: equal losses in eval mode, different ones in training mode."""
    model_shape = shape(dropout=0.3, attn_dropout=0.3)
    pack = PackedLM([build(0, model_shape) for _ in range(3)])
    ids, targets = batches(0, k=1)[0]
    inputs = ids.expand(3, *ids.shape), targets.expand(3, *targets.shape)
    pack.eval()
    evaluated = pack.loss(*inputs)
    assert evaluated[0] == evaluated[1] == evaluated[2]
    pack.train()
    trained = pack.loss(*inputs)
    assert len(set(trained.tolist())) == 3


def test_members_must_share_a_shape():
    with pytest.raises(ValueError, match="one model shape"):
        PackedLM([build(0, shape()), build(0, shape(n_layers=3))])


def test_the_cuda_static_width_step_matches_the_cpu_padding_free_step():
    """PackStep's two paths (vmapped forward on batches padded to multiples of 8 tokens, as on CUDA; member by
    member on unpadded batches, as on the CPU) train the same pack the same way."""
    from omegaconf import OmegaConf

    from grokking.step import PackStep

    cfg = OmegaConf.create({"optim": {"betas": [0.9, 0.999], "eps": 1e-7, "weight_decay": 0.0}, "compile": False})
    steps = []
    for static in (False, True):
        step = PackStep([build(s, shape()) for s in SEEDS], cfg, torch.device("cpu"), pad=0)
        step.static_shapes = static
        stats = [step(batches(n), 3e-3, 0.5, torch.autocast("cpu", enabled=False), torch.device("cpu"))
                 for n in range(4)]
        steps.append((torch.stack(stats), step))
    (cpu_stats, cpu_step), (cuda_stats, cuda_step) = steps
    assert torch.allclose(cpu_stats, cuda_stats, rtol=1e-5)
    for a, b in zip(cpu_step.pack.parameters(), cuda_step.pack.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-5)

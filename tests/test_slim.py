"""QSA: SlimmableBlock, builders, the pruning schedule, budgets and the stripped (deployable) model."""
import copy
from types import SimpleNamespace

import pytest
import torch

from quantsr.data.datasets import BenchmarkSet
from quantsr.eval.opcount import profile
from quantsr.models.blocks.classic import ResidualBlockNoBN
from quantsr.models.registry import create_model
from quantsr.models.slimmable import SkippedBlock, SlimmableBlock, make_slimmable_, slimmable_blocks, strip_skipped
from quantsr.qat.qsa import QSAScheduler, blocks_for_budget, overparameterize, slim_report
from quantsr.train.trainer import TrainConfig, Trainer
from tests.conftest import tiny_edsr


def fake_trainer(model, iteration=0, validation=(), **kw):
    return SimpleNamespace(model=model, iteration=iteration, history=SimpleNamespace(validation=list(validation)),
                           **kw)


def test_slimmable_block_equals_block_and_skips():
    torch.manual_seed(0)
    block = ResidualBlockNoBN(8, res_scale=0.5)
    slim = SlimmableBlock(block)
    x = torch.randn(2, 8, 6, 6)
    assert torch.equal(slim(x), block(x))  # beta_blk = 1: the block, bit for bit
    with torch.no_grad():
        slim.beta_blk.fill_(0.3)
    branch = block.conv2(block.relu(block.conv1(x))) * 0.5
    torch.testing.assert_close(slim(x), 0.3 * x + branch)
    calls = []
    block.conv1.register_forward_hook(lambda *a: calls.append(1))
    slim.skip_(iteration=7)
    assert slim(x) is x and not calls  # skipped: the input, no compute
    assert slim.beta_blk.item() == 1 and not slim.beta_blk.requires_grad
    assert int(slim.skipped) == 1 and int(slim.pruned_at) == 7
    slim.unskip_()
    assert torch.equal(slim(x), block(x)) and slim.beta_blk.requires_grad


def test_make_slimmable_names_and_plain_checkpoint_loading():
    plain = tiny_edsr(slimmable=False)
    slim = make_slimmable_(copy.deepcopy(plain))
    keys = slim.state_dict().keys()
    assert {"body.3.block.conv1.weight", "body.3.beta_blk", "body.3.skipped", "body.3.pruned_at"} <= set(keys)
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(slim(x), plain(x))
    assert make_slimmable_(slim) is slim and not isinstance(slim.body[0].block, SlimmableBlock)  # idempotent

    fresh = tiny_edsr(seed=1)
    fresh.load_state_dict(plain.state_dict())  # an unwrapped checkpoint loads strictly
    assert torch.equal(fresh(x), plain(x))
    slim.body[2].skip_(iteration=5)
    fresh.load_state_dict(slim.state_dict())  # the skip flag comes back with the checkpoint
    assert fresh.body[2].is_skipped and not fresh.body[2].beta_blk.requires_grad
    assert torch.equal(fresh(x), slim(x))

    with pytest.raises(ValueError, match="fsrcnn has no body of C -> C residual blocks"):
        make_slimmable_(create_model("fsrcnn", scale=2))


def test_overparameterize_depths():
    edsr = overparameterize("edsr", 2, num_feat=4)
    assert len(edsr.body) == 32 and not slimmable_blocks(edsr)
    assert len(overparameterize("srresnet", 4, num_feat=4).body) == 32
    assert len(overparameterize("imdn", 2, num_feat=16).body) == 12
    assert len(overparameterize("rlfn", 2, target_blocks=1, slimmable=True).body) == 2
    swin = overparameterize("swinir_s", 4, slimmable=True)
    assert len(swin.layers) == 8 and len(slimmable_blocks(swin)) == 8
    assert all(len(g.block.residual_group.blocks) == 6 for g in swin.layers)
    assert swin.layers[0].block.residual_group.blocks[0].attn.num_heads == 6
    small = overparameterize("swinir_s", 2, target_blocks=1, embed_dim=12, group_depth=2, group_heads=2,
                             window_size=4, slimmable=True)
    small.layers[0].skip_()
    assert small(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16)  # the mask argument passes through
    with pytest.raises(ValueError, match="target_blocks"):
        overparameterize("edsr", 2, num_block=8)
    with pytest.raises(ValueError, match="supports"):
        overparameterize("fsrcnn", 2)


def test_scheduler_first_prune_recovery_interval_and_budget():
    model = tiny_edsr(num_block=8)  # N = 8, budget 4 kept
    with torch.no_grad():
        for i, b in enumerate(slimmable_blocks(model)):
            b.beta_blk.fill_(1.0 + 0.1 * ((3 * i) % 8))  # distinct: order of pruning 5, 2, 7, 4, ...
    qsa = QSAScheduler(total_iters=100)  # first prune at 20, interval 2T/N = 25
    val = [{"iteration": 10, "psnr": 30.0}]
    for it in range(1, 20):
        assert qsa(fake_trainer(model, it, val)) is None
    val.append({"iteration": 20, "psnr": 31.0})  # the validation at 20 ran before the prune: it sets the reference
    ev = qsa(fake_trainer(model, 20, val))
    assert (ev.iteration, ev.block, ev.reason) == (20, 5, "first") and model.body[5].is_skipped
    assert model.body[5].beta_blk.item() == 1.0 and not model.body[5].beta_blk.requires_grad
    assert qsa(fake_trainer(model, 21, val)) is None  # no new validation
    val.append({"iteration": 25, "psnr": 29.0})
    assert qsa(fake_trainer(model, 25, val)) is None  # not recovered, 5 < 25 iterations
    val.append({"iteration": 30, "psnr": 31.0})
    ev = qsa(fake_trainer(model, 30, val))  # recovered to the best PSNR seen at the previous prune (31)
    assert (ev.block, ev.reason, ev.psnr) == (2, "recovered", 31.0)
    for it in (35, 50):
        val.append({"iteration": it, "psnr": 30.5})
        assert qsa(fake_trainer(model, it, val)) is None
    assert qsa(fake_trainer(model, 56, val)) is None  # interval elapsed, but only validations trigger
    val.append({"iteration": 55, "psnr": 30.0})
    ev = qsa(fake_trainer(model, 55, val))  # 55 - 30 >= 25
    assert (ev.block, ev.reason) == (7, "interval")
    val.append({"iteration": 60, "psnr": 31.5})  # the reference is 31.0 (best up to iteration 55)
    assert qsa(fake_trainer(model, 60, val)).block == 4
    for it in range(61, 200):  # budget met: never more than N - budget = 4 pruned
        val.append({"iteration": it, "psnr": 40.0})
        assert qsa(fake_trainer(model, it, val)) is None
    assert sum(b.is_skipped for b in slimmable_blocks(model)) == 4
    assert [e.block for e in qsa.events] == [5, 2, 7, 4]

    # The state lives in the model: a new scheduler on a reloaded model continues where this one stopped.
    model2 = tiny_edsr(num_block=8)
    model2.load_state_dict(model.state_dict())
    qsa2 = QSAScheduler(total_iters=100, budget=2)  # keep 2: two more to prune
    val2 = val[:6] + [{"iteration": 70, "psnr": 0.0}]
    assert qsa2(fake_trainer(model2, 70, val2)) is None  # last prune 60, 10 < 25, not recovered
    assert [(e.iteration, e.block, e.reason) for e in qsa2.events[:4]] == [
        (20, 5, "restored"), (30, 2, "restored"), (55, 7, "restored"), (60, 4, "restored")]
    assert len(qsa2.finalize(model2)) == 2 and sum(b.is_skipped for b in slimmable_blocks(model2)) == 6


def test_scheduler_without_reference_and_custom_budget():
    model = tiny_edsr(num_block=4)
    qsa = QSAScheduler(total_iters=10, budget=3)  # prune 1 only; first at 2
    assert qsa(fake_trainer(model, 2, [])).reason == "first"
    assert qsa(fake_trainer(model, 9, [{"iteration": 9, "psnr": 99.0}])) is None  # budget met
    model = tiny_edsr(num_block=4)
    qsa = QSAScheduler(total_iters=10)  # interval 5; no validation before the first prune: interval rule only
    qsa(fake_trainer(model, 2, []))
    assert qsa(fake_trainer(model, 4, [{"iteration": 4, "psnr": 99.0}])) is None
    assert qsa(fake_trainer(model, 7, [{"iteration": 7, "psnr": 1.0}])).reason == "interval"
    with pytest.raises(ValueError, match="budget"):
        QSAScheduler(total_iters=10, budget=5)(fake_trainer(model, 1))
    with pytest.raises(ValueError, match="make_slimmable_"):
        QSAScheduler(total_iters=10)(fake_trainer(tiny_edsr(slimmable=False), 1))


@pytest.mark.parametrize("set_to_none", [True, False])
def test_pruned_beta_stays_one_after_optimizer_steps(set_to_none):
    model = tiny_edsr()
    opt = torch.optim.Adam(model.parameters(), lr=0.1, weight_decay=0.1)
    qsa = QSAScheduler(total_iters=5, budget=2)
    x = torch.rand(2, 3, 8, 8)
    for it in range(1, 6):
        opt.zero_grad(set_to_none=set_to_none)
        model(x).mean().backward()
        opt.step()
        qsa(fake_trainer(model, it, val_sets=[]))  # a trainer that never validates: 2T/N rule every iteration
        for b in slimmable_blocks(model):
            if b.is_skipped:
                assert b.beta_blk.item() == 1.0 and b.beta_blk.grad is None
    kept = [b.beta_blk.item() for b in slimmable_blocks(model) if not b.is_skipped]
    assert len(kept) == 2 and all(v != 1.0 for v in kept)  # unpruned betas are trained


def test_strip_skipped_reduces_ops_and_exports():
    model = tiny_edsr(num_block=4).eval()
    full = profile(model, (3, 8, 8))
    model.body[1].skip_()
    model.body[2].skip_()
    stripped = strip_skipped(model)
    assert isinstance(stripped.body[1], SkippedBlock) and isinstance(model.body[1], SlimmableBlock)  # a copy
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(stripped(x), model(x))
    assert not any(k.startswith(("body.1.", "body.2.")) for k in stripped.state_dict())
    r = slim_report(model, (3, 8, 8))
    two_blocks = profile(tiny_edsr(num_block=2, slimmable=False), (3, 8, 8))
    assert r.ops == two_blocks.ops < full.ops and r.macs == two_blocks.macs
    assert r.unused_params == 0 and r.params == two_blocks.params + 2  # + the two kept beta_blk
    exported = torch.export.export(stripped, (x,))
    assert torch.equal(exported.module()(x), model(x))
    assert not any(k.startswith("body.1.") for k in exported.state_dict)


def test_blocks_for_budget():
    def builder(n):
        return create_model("edsr", scale=2, num_feat=8, num_block=n)

    size = (3, 8, 8)
    three = profile(builder(3), size)
    assert blocks_for_budget(builder, 8, budget_bytes=three.storage_bits / 8, input_size=size) == 3
    assert blocks_for_budget(builder, 8, budget_ops=three.ops + 1, input_size=size) == 3
    assert blocks_for_budget(builder, 2, budget_ops=three.ops, input_size=size) == 2  # capped by max_blocks

    def w2a2(fqn, m):
        return (2, 2) if fqn.startswith("body.") else None

    low = profile(builder(3), size, bits_fn=w2a2)
    assert blocks_for_budget(builder, 8, budget_bytes=low.storage_bits / 8, input_size=size, bits_fn=w2a2) == 3
    with pytest.raises(ValueError, match="single block"):
        blocks_for_budget(builder, 8, budget_bytes=10, input_size=size)


class RandomPairs:
    def batch(self, i):
        g = torch.Generator().manual_seed(i)
        hr = torch.rand(2, 3, 16, 16, generator=g)
        return hr[:, :, ::2, ::2].contiguous(), hr


def test_scheduler_as_trainer_callback_with_validation(rgb_folder):
    model = tiny_edsr(num_block=4)
    qsa = QSAScheduler(total_iters=6)  # first prune at 1, interval 3
    cfg = TrainConfig(iterations=6, val_every=2, checkpoint_every=0, progress=False)
    trainer = Trainer(model, RandomPairs(), torch.nn.L1Loss(), torch.optim.Adam(model.parameters(), 1e-3),
                      val_sets=[BenchmarkSet(rgb_folder, 2)], config=cfg, callbacks=[qsa])
    trainer.fit()
    # first prune at 0.2 T = 1; validations at 2, 4, 6: at 2 no reference PSNR and 1 < 3 iterations, at 4 the
    # 2T/N = 3 rule fires; then the budget (2 kept) is met
    assert [(e.iteration, e.reason) for e in qsa.events] == [(1, "first"), (4, "interval")]
    assert [r["iteration"] for r in trainer.history.validation] == [2, 4, 6]

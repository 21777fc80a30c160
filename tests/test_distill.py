"""SFD: per-block feature hooks, the distillation loss, K around pruned blocks, and a Trainer run with QSA."""
import math

import torch
import torch.nn.functional as F

from quantsr.models.slimmable import make_slimmable_, slimmable_blocks, strip_skipped
from quantsr.qat.qsa import QSAScheduler, overparameterize
from quantsr.qat.sfd import SHALLOW, FeatureHooks, SFDLoss, distill_keys
from quantsr.quant.configs import QuantSRConfig
from quantsr.quant.layers import QConv2d
from quantsr.quant.quantize import quantize_
from quantsr.train.trainer import TrainConfig, Trainer
from tests.conftest import tiny_edsr


def tiny_swinir(slimmable=False):
    torch.manual_seed(0)
    return overparameterize("swinir_s", 2, target_blocks=1, embed_dim=12, group_depth=2, group_heads=2,
                            window_size=4, slimmable=slimmable)


def test_feature_hooks_edsr():
    plain, slim = tiny_edsr(slimmable=False), tiny_edsr()
    x = torch.rand(2, 3, 8, 8)
    with FeatureHooks(plain) as hp, FeatureHooks(slim, keys=[0, 2, 3]) as hs:
        plain(x)
        slim.body[2].skip_()
        slim(x)
        assert sorted(hp.features) == [0, 1, 2, 3] and sorted(hs.features) == [0, 3]  # skipped: no feature
        assert all(f.shape == (2, 8, 8, 8) for f in hp.features.values())
        # block 0's feature is its first conv applied to the shallow feature, before the ReLU
        shallow = plain.conv_first((x - plain.mean) * plain.img_range)
        torch.testing.assert_close(hp.features[0], plain.body[0].conv1(shallow))
        assert hp.features[0].min() < 0
    assert not plain.body[0].conv1._forward_hooks and not plain._forward_pre_hooks  # removed on exit


def test_feature_hooks_swinir_and_after_quantization():
    model = tiny_swinir(slimmable=True)
    x = torch.rand(1, 3, 8, 8)
    hooks = FeatureHooks(model)
    model(x)
    assert sorted(hooks.features) == [SHALLOW, 0, 1]
    assert all(f.shape == (1, 12, 8, 8) for f in hooks.features.values())
    torch.testing.assert_close(hooks.features[SHALLOW], model.conv_first((x - model.mean) * model.img_range))
    # Hooks made before quantize_ follow the swapped layers (resolved at each forward).
    edsr = tiny_edsr()
    hooks = FeatureHooks(edsr)
    quantize_(edsr, QuantSRConfig(4, 4))
    edsr.train()(x)
    assert sorted(hooks.features) == [0, 1, 2, 3] and isinstance(edsr.body[0].block.conv1, QConv2d)
    assert len(edsr.body[0].block.conv1._forward_hooks) == 1


def test_distill_keys_exclude_pruned_block_and_its_successor():
    model = tiny_edsr(num_block=6)
    assert distill_keys(model) == [0, 1, 2, 3, 4, 5]
    model.body[2].skip_()
    assert distill_keys(model) == [0, 1, 4, 5]
    model.body[0].skip_()
    model.body[5].skip_()
    assert distill_keys(model) == [4]
    assert distill_keys(strip_skipped(model)) == [4]
    swin = tiny_swinir(slimmable=True)
    swin.layers[0].skip_()
    assert distill_keys(swin) == [SHALLOW]  # the shallow feature is always distilled


def _hand_features(model, x):
    """Block features of a tiny EDSR computed by hand (first conv of each unpruned block)."""
    h = model.conv_first((x - model.mean) * model.img_range)
    feats = {}
    for k, blk in enumerate(model.body):
        skipped = getattr(blk, "is_skipped", False)
        inner = getattr(blk, "block", blk)
        if not skipped:
            feats[k] = inner.conv1(h)
            h = blk(h)
    return feats


def test_sfd_loss_equals_hand_formula_and_gradients():
    student, teacher = tiny_edsr(seed=0), tiny_edsr(slimmable=False, seed=1).requires_grad_(False)
    student.body[1].skip_()
    loss_fn = SFDLoss(student)
    lr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 16, 16)
    sr = student(lr)
    loss = loss_fn(sr, hr, lr=lr, model=student, teacher=teacher)
    assert not loss_fn._student.features and not loss_fn._teacher.features  # released after use

    fs, ft = _hand_features(student, lr), _hand_features(teacher, lr)
    keys = [0, 3]  # block 1 pruned: 1 and 2 excluded
    norms = [math.sqrt(((fs[k] - ft[k]) ** 2).sum().item()) for k in keys]
    expected = F.l1_loss(sr, hr).item() + 1e-4 * sum(norms) / len(norms)
    assert math.isclose(loss.item(), expected, rel_tol=1e-6)
    assert loss_fn.last["keys"] == keys
    loss.backward()
    assert student.body[0].block.conv1.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())
    with torch.no_grad():  # plain forwards (validation, evaluating the teacher): no capture, no early exit
        assert teacher(lr).shape == student(lr).shape == (2, 3, 16, 16)
    assert not loss_fn._student.features and not loss_fn._teacher.features

    # A student first seen in forward (no student at construction) gives the same loss; no teacher: plain L1.
    late = SFDLoss()
    assert math.isclose(late(sr, hr, lr=lr, model=student, teacher=teacher).item(), expected, rel_tol=1e-6)
    assert late(sr, hr).item() == F.l1_loss(sr, hr).item()


def test_sfd_loss_swinir_includes_shallow():
    student, teacher = tiny_swinir(slimmable=True), tiny_swinir()
    with torch.no_grad():
        teacher.conv_first.weight.add_(0.1)
    loss_fn = SFDLoss(student, weight=1.0)
    lr, hr = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 16, 16)
    sr = student(lr)
    loss = loss_fn(sr, hr, lr=lr, model=student, teacher=teacher)
    assert loss_fn.last["keys"] == [SHALLOW, 0, 1] and loss.item() > F.l1_loss(sr, hr).item()


class RandomPairs:
    def batch(self, i):
        g = torch.Generator().manual_seed(i)
        hr = torch.rand(2, 3, 16, 16, generator=g)
        return hr[:, :, ::2, ::2].contiguous(), hr


def test_trainer_with_sfd_and_qsa_end_to_end():
    teacher = tiny_edsr(slimmable=False, seed=1)
    student = make_slimmable_(tiny_edsr(slimmable=False, seed=1))  # initialised from the teacher
    quantize_(student, QuantSRConfig(2, 2))
    loss_fn = SFDLoss(student)
    qsa = QSAScheduler(total_iters=3)  # N = 4: first prune at 1, 2T/N = 1.5 -> second at 3 (no validation)
    keys = []
    cfg = TrainConfig(iterations=3, val_every=0, checkpoint_every=0, progress=False)
    trainer = Trainer(student, RandomPairs(), loss_fn, torch.optim.Adam(student.parameters(), 1e-3),
                      teacher=teacher, config=cfg, callbacks=[qsa, lambda t: keys.append(loss_fn.last["keys"])])
    history = trainer.fit()
    assert len(history.losses) == 3 and all(math.isfinite(v) for v in history.losses)
    assert [e.iteration for e in qsa.events] == [1, 3]
    pruned = [e.block for e in qsa.events]
    first = pruned[0]
    assert keys[0] == [0, 1, 2, 3]  # iteration 1's loss ran before the first prune
    assert keys[1] == keys[2] == [k for k in range(4) if k not in (first, first + 1)]
    assert sum(b.is_skipped for b in slimmable_blocks(student)) == 2
    assert all(slimmable_blocks(student)[i].beta_blk.item() == 1.0 for i in pruned)
    assert all(p.grad is None for p in teacher.parameters())

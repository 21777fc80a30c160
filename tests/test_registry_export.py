"""Every registered model at every scale: builds, maps [0,1] RGB to x-scale RGB, and torch.export's."""
import pytest
import torch

from quantsr import create_model, list_models
from quantsr.models.registry import model_scales

MODEL_SCALES = [(name, scale) for name in list_models() for scale in model_scales(name)]


def test_registry_lists_the_issue_architectures():
    assert {"edsr", "srresnet", "swinir_s", "imdn", "rlfn", "rfdn", "carn_m", "fsrcnn"} <= set(list_models())


@pytest.mark.parametrize("name, scale", MODEL_SCALES)
def test_torch_export_matches_eager(name, scale):
    torch.manual_seed(0)
    model = create_model(name, scale=scale).eval()
    (x,) = model.example_inputs()
    with torch.no_grad():
        eager = model(x)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        out = exported.module()(x)
    assert eager.shape == (x.shape[0], 3, x.shape[2] * scale, x.shape[3] * scale)
    torch.testing.assert_close(out, eager, atol=1e-5, rtol=1e-5)
    # Constants live in buffers, not in Python attributes that export would bake silently.
    assert not [n for n, t in vars(model).items() if isinstance(t, torch.Tensor)]


def test_unknown_name_and_scale_are_clear_errors():
    with pytest.raises(ValueError, match="unknown model 'edsrr'.*available: .*edsr"):
        create_model("edsrr")
    with pytest.raises(ValueError, match="supports scales"):
        create_model("edsr", scale=5)


@pytest.mark.parametrize("name", list_models())
def test_descriptor_states_the_model_contract(name):
    from quantsr.models.registry import descriptor_of, get_descriptor
    from quantsr.runtime.tiling import tiled_forward

    descriptor = get_descriptor(name)
    scale = descriptor.scales[-1]
    model = create_model(name, scale=scale).eval()
    assert descriptor_of(model) is descriptor and descriptor.scales == model_scales(name)
    # The minimum side really runs (and is what tiling pads small tiles up to).
    x = torch.rand(1, 3, descriptor.min_side, descriptor.min_side + 3)
    with torch.no_grad():
        assert model(x).shape == (1, 3, x.shape[2] * scale, x.shape[3] * scale)
    # The declared body is a list of blocks QSA can slim (or the architecture says it has none).
    if descriptor.body is not None:
        from quantsr.models.slimmable import block_container

        assert len(block_container(model)) >= 1
    # Every declared channel split names a conv whose output channels the groups cover exactly.
    for fqn, sizes in descriptor.splits(model).items():
        assert sum(sizes) == model.get_submodule(fqn).out_channels
    # Tiling warns exactly for the architectures that are not tile-exact.
    big = torch.rand(1, 3, 40, 40)
    with pytest.warns(UserWarning, match="not tile-exact") if not descriptor.tile_exact else _no_warning():
        tiled_forward(model, big, scale, tile=24, overlap=8)


class _no_warning:
    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("error", UserWarning)

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)
        return False


DYNAMIC_LIMITS = {"swinir_s": "its window padding leaves guards torch.export cannot solve for dynamic H/W"}


@pytest.mark.parametrize("name, scale", [
    pytest.param(n, s, marks=pytest.mark.xfail(reason=DYNAMIC_LIMITS[n], strict=True)) if n in DYNAMIC_LIMITS
    else (n, s) for n, s in MODEL_SCALES])
def test_torch_export_with_dynamic_height_and_width(name, scale):
    """What every `.pte` export asks for: H and W as export-time dims from the model's minimum side up; a model
    that bakes a float scale factor into a guard (F.interpolate(scale_factor=...)) fails here."""
    from quantsr.export.pte import _dynamic_shapes
    from quantsr.models.registry import get_descriptor

    model = create_model(name, scale=scale).eval()
    side = max(get_descriptor(name).min_side, 16)
    x = torch.rand(1, 3, side, side + 8)
    exported = torch.export.export(model, (x,), dynamic_shapes=_dynamic_shapes(True, 64, side))
    other = torch.rand(1, 3, side + 8, side)
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(other), model(other), atol=1e-5, rtol=1e-5)

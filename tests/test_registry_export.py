"""Every registered model at every scale: builds, maps [0,1] RGB to x-scale RGB, and torch.export's."""
import pytest
import torch

from quantsr import create_model, list_models
from quantsr.registry import model_scales

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

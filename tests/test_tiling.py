import numpy as np
import pytest
import torch

from quantsr import create_model, evaluate
from quantsr.checkpoints.load import load_model
from quantsr.data.datasets import BenchmarkSet
from quantsr.runtime.tiling import plan_tiles, tiled_forward
from tests.conftest import BENCHMARK, require


@pytest.mark.parametrize("h, w, tile, overlap", [(50, 70, 16, 4), (16, 16, 16, 8), (7, 3, 4, 0), (33, 1, 8, 2)])
def test_tile_cores_cover_every_pixel_once(h, w, tile, overlap):
    cover = np.zeros((h, w), int)
    for t in plan_tiles(h, w, tile, overlap):
        cover[t.y0 : t.y1, t.x0 : t.x1] += 1
        assert t.py0 == max(0, t.y0 - overlap) and t.px1 == min(w, t.x1 + overlap)
    assert (cover == 1).all()


def test_local_network_tiles_exactly():
    # conv_first, 2 blocks x 2 convs, conv_after_body, the upsample conv (all 3x3 at LR) and conv_last at HR:
    # receptive radius 7.5 LR px, so an overlap of 8 reproduces the whole image.
    torch.manual_seed(0)
    model = create_model("edsr", scale=2, num_feat=8, num_block=2).eval()
    x = torch.rand(1, 3, 37, 29)
    whole = model(x)
    tiled = tiled_forward(model, x, 2, tile=10, overlap=8)
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)
    assert not torch.allclose(tiled_forward(model, x, 2, tile=10, overlap=0), whole, atol=1e-4)


def test_tiled_evaluation_matches_whole_image_within_001_db():
    """The bar: tiles of 48 LR px (Set5/Set14 images are split into 4-9 tiles) change no image by > 0.01 dB.

    SPAN is fully convolutional with a receptive radius (about 22 LR px) below the 24 px overlap. IMDN (global CCA
    statistics) and RFDN/RLFN (ESA: strided pooling, then interpolation to the tile size) are not local, so they
    only come close; benchmarks/tiling_error.py measures how close."""
    require(BENCHMARK / "Set14")
    model = load_model(model="span", scale=4)
    sets = [BenchmarkSet.from_name("Set5", 4), BenchmarkSet.from_name("Set14", 4)]
    whole = evaluate(model, sets, 4, progress=False, ssim=False)
    tiled = evaluate(model, sets, 4, tile=48, overlap=24, progress=False, ssim=False)
    for a, b in zip(whole.sets, tiled.sets):
        diffs = [abs(x.psnr - y.psnr) for x, y in zip(a.images, b.images)]
        assert max(diffs) <= 0.01, (a.name, diffs)


def test_global_context_model_warns_when_tiled():
    model = create_model("imdn", scale=2, num_feat=16, num_blocks=1).eval()
    with pytest.warns(UserWarning, match="non-local"):
        tiled_forward(model, torch.rand(1, 3, 40, 40), 2, tile=20, overlap=8)

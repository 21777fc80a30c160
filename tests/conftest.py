import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from quantsr.artifacts.locations import LocationNotFoundError
from quantsr.data.datasets import default_data_root
from quantsr.models.weights import default_weights_dir

try:
    DATA = default_data_root()
except LocationNotFoundError:  # a clone without ../shared: the tests that need data fail in require(), not all
    DATA = Path("../shared/data (not found)")
BENCHMARK = DATA / "benchmark"
try:
    WEIGHTS = default_weights_dir()
except LocationNotFoundError:
    WEIGHTS = Path("../shared/weights (not found)")


def tiny_edsr(num_block: int = 4, slimmable: bool = True, seed: int = 0):
    """A 2x EDSR with 8 channels (slimmable by default) for the QSA / SFD tests."""
    from quantsr.models.registry import create_model
    from quantsr.models.slimmable import make_slimmable_

    torch.manual_seed(seed)
    model = create_model("edsr", scale=2, num_feat=8, num_block=num_block)
    return make_slimmable_(model) if slimmable else model


def tiny_fp_checkpoint(path: Path, scale: int = 2, num_block: int = 1) -> Path:
    """An 8-channel FP EDSR checkpoint (weights and metadata, as `quantsr train` writes them) at ``path``."""
    from quantsr.models.registry import create_model
    from quantsr.train.checkpoint import save_atomic

    torch.manual_seed(0)
    kwargs = {"num_feat": 8, "num_block": num_block}
    model = create_model("edsr", scale=scale, **kwargs)
    save_atomic({"model": model.state_dict(), "metadata": {"model": "edsr", "scale": scale, "model_kwargs": kwargs}},
                path)
    return path


def require(path: Path) -> Path:
    """Tests that read ../shared data or weights fail loudly (not skip) when they are missing in this checkout."""
    if not path.exists():
        pytest.fail(f"{path} missing: tests need ../shared (set QUANTSR_DATA / QUANTSR_WEIGHTS)")
    return path


@pytest.fixture
def rgb_folder(tmp_path: Path) -> Path:
    """A folder of three small valid RGB images (64x48)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "hr"
    folder.mkdir()
    for i in range(3):
        base = np.linspace(0, 255, 64)[None, :, None] * np.ones((48, 1, 3))
        img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img{i}.png")
    return folder


def pytest_configure(config):
    # Small test models are faster single-threaded and the numbers do not depend on thread scheduling.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

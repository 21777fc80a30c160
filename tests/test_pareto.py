"""The frontier logic, ideal bytes and the table/plot of benchmarks/pareto.py (quantsr.bench.pareto)."""
from __future__ import annotations

import math

import pytest
from torch import nn

from quantsr.bench.pareto import ParetoPoint, dominated_by, frontier, markdown_table, model_ideal_bytes, plot


def point(name: str, size: int, psnr: float, kind: str = "fp32", scale: int = 4, **extra) -> ParetoPoint:
    return ParetoPoint(name, kind, name, scale, size, {"Set5": psnr}, **extra)


def test_frontier_keeps_only_undominated_points_smallest_first():
    small = point("small", 100, 30.0)
    big_better = point("big", 1000, 31.0)
    big_worse = point("bloated", 1000, 29.5)  # worse than everything, and the largest
    same_size_worse = point("twin", 100, 29.9)  # same size, lower PSNR
    same_size_same = point("copy", 100, 30.0)  # ties dominate nothing and are not dominated
    points = [big_better, big_worse, small, same_size_worse, same_size_same]
    assert [p.name for p in frontier(points, "Set5")] == ["small", "copy", "big"]
    assert dominated_by(big_worse, points, "Set5") == [big_better, small, same_size_worse, same_size_same]
    assert dominated_by(same_size_worse, points, "Set5") == [small, same_size_same]


def test_a_point_without_a_score_is_neither_on_nor_against_the_frontier():
    unscored = ParetoPoint("x", "int8", "x", 4, 10, {"Set14": 25.0})
    scored = point("a", 100, 30.0)
    assert frontier([unscored, scored], "Set5") == [scored]
    assert dominated_by(scored, [unscored, scored], "Set5") == []


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind"):
        point("a", 1, 1.0, kind="fp16")


def test_ideal_bytes_count_quantized_layers_at_their_bits():
    from quantsr.quant import QuantSRConfig, quantize_

    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3), nn.Conv2d(8, 3, 3))
    weights = [m.weight.numel() for m in model]
    biases = sum(m.bias.numel() for m in model)
    assert model_ideal_bytes(model) == 4 * (sum(weights) + biases)
    assert model_ideal_bytes(model, 8) == sum(weights) + 4 * biases
    quantize_(model, QuantSRConfig(2, 4), lambda m, name: name == "1")
    quantizer_params = sum(p.numel() for n, p in model.named_parameters() if "quantizer" in n)
    assert quantizer_params > 0
    expected_bits = 8 * (weights[0] + weights[2]) + 2 * weights[1] + 32 * (biases + quantizer_params)
    assert model_ideal_bytes(model, 8) == math.ceil(expected_bits / 8)


def test_table_marks_the_frontier_per_scale_and_shows_eager_scores(tmp_path):
    points = [point("fsrcnn", 51_000, 30.5), point("imdn", 2_800_000, 32.2),
              point("imdn W4A4", 700_000, 31.3, kind="low-bit", eager_psnr={"Set5": 31.31}, pte_bytes=903_744),
              point("imdn", 2_700_000, 38.0, scale=2)]
    table = markdown_table(points, ["Set5"])
    lines = table.splitlines()
    assert lines[0].startswith("| model | form | ideal bytes")
    row = {line.split(" | ")[0].strip("| "): line for line in lines[2:]}
    assert "30.500 \\*" in row["fsrcnn x4"] and "32.200 \\*" in row["imdn x4"]
    assert "31.300 \\* (31.310)" in row["imdn W4A4 x4"] and "903,744" in row["imdn W4A4 x4"]
    assert "38.000 \\*" in row["imdn x2"]  # its own scale's frontier, not beaten by x4's points
    png = plot(points, ["Set5"], tmp_path / "pareto.png", scale=4)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_point_without_a_working_artifact_shows_its_eager_score_off_the_frontier():
    broken = ParetoPoint("carn_m int8", "int8", "carn_m", 4, 400_000, {}, eager_psnr={"Set5": 31.8})
    table = markdown_table([broken, point("fsrcnn", 51_000, 30.5)], ["Set5"])
    assert "| — (31.800) |" in table
    assert frontier([broken], "Set5") == []


def test_a_reuse_run_drops_a_public_models_old_int8_points_only_when_it_visits_that_model():
    """Visiting CARN-M's public points replaces its old int8 point (its config may have changed); visiting only a
    low-bit CARN-M or SPAN (another --only) keeps every cached public point."""
    from quantsr.bench.pareto import merge_reused

    def entry(model: str, kind: str, tag: str = "") -> tuple[str, dict]:
        return f"{model} x4 {kind} {tag}", {"model": model, "scale": 4, "kind": kind}

    cached = dict([entry("carn_m", "int8", "v5"), entry("carn_m", "fp32"), entry("span", "int8", "v5"),
                   entry("carn_m", "low-bit", "w4a8")])
    low_bit_only = dict([entry("carn_m", "low-bit", "w2a8"), entry("span", "low-bit", "w4a8")])
    assert set(merge_reused(cached, low_bit_only)) == set(cached) | set(low_bit_only)
    public_visit = dict([entry("carn_m", "int8", "v6"), entry("carn_m", "fp32")])
    merged = merge_reused(cached, public_visit)
    assert "carn_m x4 int8 v5" not in merged and "span x4 int8 v5" in merged
    assert set(merged) == {"carn_m x4 int8 v6", "carn_m x4 fp32 ", "span x4 int8 v5", "carn_m x4 low-bit w4a8"}

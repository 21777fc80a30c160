"""quantsr.bench.desktop on a tiny QAT checkpoint: every variant exported, timed and reported."""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_export_pte import tiny_qat  # noqa: E402

from quantsr.bench.desktop import bench, deploy_variants, ideal_packed_bytes, table  # noqa: E402
from quantsr.models.registry import create_model  # noqa: E402
from quantsr.train.checkpoint import save_atomic  # noqa: E402


def test_ideal_bytes_count_bits():
    torch.manual_seed(0)
    fp = create_model("imdn", scale=2, num_feat=32, num_blocks=1)
    q2, q4 = tiny_qat(bits=2), tiny_qat(bits=4)
    assert ideal_packed_bytes(fp) == 4 * sum(p.numel() for p in fp.parameters())
    assert ideal_packed_bytes(q2) < ideal_packed_bytes(q4) < ideal_packed_bytes(fp) + 4 * 1000


def test_deploy_bench_runs_every_variant(tmp_path):
    net = tiny_qat(bits=4)
    meta = {"model": "imdn", "scale": 2, "model_kwargs": {"num_feat": 32, "num_blocks": 1},
            "qat": {"w_bits": 4, "a_bits": 4}}
    save_atomic({"model": net.state_dict(), "metadata": meta}, tmp_path / "q.pt")
    torch.manual_seed(1)
    teacher = create_model("imdn", scale=2, num_feat=32, num_blocks=1).eval()
    variants, scale = deploy_variants(tmp_path / "q.pt", tmp_path / "out", teacher=teacher, with_set5=False,
                                      calibration_side=16)
    names = [v.name for v in variants]
    assert names[:5] == ["eager fp32", "pte fp32", "pte QAT (dynamic)", "pte int8 PTQ", "pte QAT static int8"]
    rows = bench(variants, [16, 24], scale, rounds=2)
    assert len(rows) == 2 * len(variants) and all(r.median_ms > 0 and r.rss_mb > 0 for r in rows)
    assert all(r.bytes for r in rows if r.variant.startswith("pte"))
    assert "pte QAT (dynamic)" in table(rows)
    # --reuse: a second run keeps the exported files (no re-export) and builds the same variants from them
    stamps = {v.name: v.file.stat().st_mtime_ns for v in variants if v.file}
    again, _ = deploy_variants(tmp_path / "q.pt", tmp_path / "out", teacher=teacher, with_set5=False,
                               calibration_side=16, reuse=True)
    assert [v.name for v in again] == names
    assert {v.name: v.file.stat().st_mtime_ns for v in again if v.file} == stamps


def test_table_reports_speedup_over_the_first_variant_per_input():
    from quantsr.bench.rows import BenchRow

    def row(name: str, size: str, ms: float) -> BenchRow:
        return BenchRow(name, size, ms, 1.0, None, None, None, None, 100.0, [ms])

    rows = [row("eager fp32", "64x64", 80.0), row("eager fp32", "256x256", 1000.0),
            row("pte", "64x64", 40.0), row("pte", "256x256", 1250.0)]
    lines = table(rows).splitlines()
    assert "| speedup |" in lines[0]
    assert lines[2].startswith("| eager fp32 | 64x64 | 80.0 | 1.00x |")
    assert lines[4].startswith("| pte | 64x64 | 40.0 | 2.00x |")
    assert lines[5].startswith("| pte | 256x256 | 1250.0 | 0.80x |")


def test_an_fp_checkpoint_gets_the_fp_and_ptq_variants_only(tmp_path):
    torch.manual_seed(1)
    fp = create_model("imdn", scale=2, num_feat=32, num_blocks=1).eval()
    save_atomic({"model": fp.state_dict(), "metadata": {"model": "imdn", "scale": 2,
                                                        "model_kwargs": {"num_feat": 32, "num_blocks": 1}}},
                tmp_path / "fp.pt")
    variants, scale = deploy_variants(tmp_path / "fp.pt", tmp_path / "out", with_set5=False, calibration_side=16)
    names = [v.name for v in variants]
    assert scale == 2 and names[:3] == ["eager fp32", "pte fp32", "pte int8 PTQ"]
    assert not [n for n in names if "QAT" in n]

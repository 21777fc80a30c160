"""One benchmark result row, the schema shared by ``quantsr bench --json``, ``quantsr mobile bench-android`` and
``quantsr mobile report``. Standard library only."""
from __future__ import annotations

from dataclasses import dataclass, field, fields

__all__ = ["BENCH_ROW_FIELDS", "BenchRow"]


@dataclass
class BenchRow:
    variant: str
    input: str
    median_ms: float
    megapixels_per_s: float
    bytes: int | None
    gzip_bytes: int | None
    ideal_bytes: int | None
    set5_psnr: float | None
    rss_mb: float  # resident set of the whole bench process (all variants loaded) after this one's warm-up
    samples_ms: list[float] = field(default_factory=list)


BENCH_ROW_FIELDS = tuple(f.name for f in fields(BenchRow))

"""``quantsr upscale``: a photo or a folder of photos, upscaled on the CPU."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _output_for(src: Path, out: str | None, scale: int, many: bool) -> Path:
    if many:
        folder = Path(out) if out else src.parent.with_name(src.parent.name + f"_x{scale}")
        return folder / (src.stem + ".png")
    return Path(out) if out else src.with_name(f"{src.stem}_x{scale}.png")


def cmd_upscale(args: argparse.Namespace) -> int:
    from PIL import Image
    from tqdm import tqdm

    from quantsr.artifacts.atomic import atomic_write
    from quantsr.data.image_io import ImageError, list_images
    from quantsr.runtime.compare import compare_image
    from quantsr.runtime.upscale import count_tiles, cpu_upscale, load_runner

    src = Path(args.input)
    many = src.is_dir()
    files = list_images(src) if many else [src]
    runner = load_runner(args.model, args.scale, args.bits)
    failures = 0
    for path in files:
        out_path = _output_for(path, args.output, args.scale, many)
        if out_path.suffix.lower() not in Image.registered_extensions():
            raise ImageError(f"{out_path}: unknown output format {out_path.suffix!r}; use .png or .jpg")
        start = time.perf_counter()
        try:
            with Image.open(path) as probe:
                size = probe.size
            bar = tqdm(total=count_tiles(size, args.tile, args.overlap), unit="tile", desc=path.name,
                       disable=args.no_progress, leave=False)
            with bar:
                result = cpu_upscale(path, args.scale, runner, tile=args.tile, overlap=args.overlap,
                                     progress=bar.update)
        except (ImageError, OSError) as exc:
            if not many:
                raise ImageError(str(exc)) from None
            print(f"quantsr: skipped {path}: {exc}", file=sys.stderr)
            failures += 1
            continue
        fmt = Image.registered_extensions()[out_path.suffix.lower()]
        if fmt == "JPEG" and result.mode in ("RGBA", "LA"):
            result = result.convert("RGB")
        with atomic_write(out_path, "wb") as fh:
            result.save(fh, format=fmt)
        elapsed = time.perf_counter() - start
        print(f"{path} -> {out_path} ({result.width}x{result.height}, {elapsed:.2f} s)")
        if args.compare:
            cmp_path = out_path.with_name(out_path.stem + "_compare.png")
            with Image.open(path) as original, atomic_write(cmp_path, "wb") as fh:
                compare_image(original, result).save(fh, format="PNG")
            print(f"comparison (bicubic | quantsr) -> {cmp_path}")
    return 1 if failures else 0

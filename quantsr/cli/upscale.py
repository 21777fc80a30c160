"""``quantsr upscale``: a photo or a folder of photos, upscaled on the CPU.

Everything that can be checked without the model is checked first (output names, collisions with inputs and with
each other, formats, writable folders, tile limits from the ``.pte`` card), before torch and the runtime are
imported, so a wrong command line fails in a fraction of a second and no input is ever overwritten."""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from quantsr.cli.errors import UsageError

__all__ = ["Job", "cmd_upscale", "plan_jobs"]

_EXTENSIONS = {"png": ".png", "jpg": ".jpg", "webp": ".webp", "bmp": ".bmp", "tiff": ".tif"}
_MAX_SIDE = {".webp": 16383, ".jpg": 65500, ".jpeg": 65500}  # libwebp's and libjpeg's largest side
_MEMORY_FACTOR = 1.3  # the output image, plus the encoder's buffers (measured: benchmarks/upscale_memory.py)


@dataclass(frozen=True)
class Job:
    source: Path
    output: Path


def plan_jobs(source: Path, output: str | None, scale: int, *, suffix: str | None = None,
              fmt: str | None = None) -> tuple[list[Job], list[str]]:
    """Input and output of every file to upscale, and notes on renamed outputs; a :class:`UsageError` for an
    output that would overwrite an input. Names: ``IN{suffix}.png``, where the suffix is ``_x{scale}`` when the
    output lies beside the inputs and empty in another folder; outputs that would share a name (``x.png`` and
    ``x.jpg``) are told apart by the input's extension (``x_png.png``, ``x_jpg.png``), then by a counter."""
    from quantsr.data.image_io import WRITABLE_FORMATS, list_images

    ext = _EXTENSIONS[fmt] if fmt else None
    if source.is_dir():
        files = list_images(source)
        folder = Path(output) if output else source.resolve().with_name(f"{source.resolve().name}_x{scale}")
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"{folder} is a file; a folder input needs an output folder")
        beside = folder.resolve() == source.resolve()
    else:
        if not source.exists():
            raise FileNotFoundError(f"{source}: no such file or folder")
        files = [source]
        target = Path(output) if output else None
        if target is None or target.is_dir():
            folder = target if target is not None else source.parent
            beside = folder.resolve() == source.parent.resolve()  # a symlinked input's own folder, not its target's
        else:
            named = WRITABLE_FORMATS.get(target.suffix.lower())
            if ext and target.suffix and named != WRITABLE_FORMATS[ext]:
                raise UsageError(f"--format {fmt} but the output is {target.name}; drop one of them")
            if not target.suffix:
                target = target.with_name(target.name + (ext or ".png"))
            _refuse_overwrite([target], files)
            return [Job(source, target)], []
    tail = (suffix if suffix is not None else (f"_x{scale}" if beside else "")) + (ext or ".png")
    base = folder.resolve()
    groups: dict[str, list[Path]] = {}
    for f in files:
        groups.setdefault(_fold(f"{f.stem}{tail}"), []).append(f)
    names, notes = {}, []
    for group in groups.values():
        for f in group:
            names[f] = f"{f.stem}{tail}" if len(group) == 1 else f"{f.stem}_{f.suffix.lstrip('.').lower()}{tail}"
        if len(group) > 1:
            notes.append(f"{' and '.join(f.name for f in group)} would share one output name: writing "
                         f"{', '.join(names[f] for f in group)}")
    taken: set[str] = set()
    for f in files:  # what the extension could not tell apart (IMG.png / img.png where case does not count)
        name, n = names[f], 1
        while _fold(name) in taken:
            n += 1
            name = f"{Path(names[f]).stem}_{n}{Path(names[f]).suffix}"
        if name != names[f]:
            notes.append(f"{f.name}: writing {name} ({names[f]} is taken)")
        names[f] = name
        taken.add(_fold(name))
    jobs = [Job(f, folder / names[f]) for f in files]
    _refuse_overwrite([base / names[f] for f in files], files)
    return jobs, notes  # in list_images' order: by name


# Where the file system ignores case (macOS and Windows by default), X.png and x.png are one file.
_CASE_BLIND = sys.platform in ("darwin", "win32")


def _fold(name: str) -> str:
    return name.lower() if _CASE_BLIND else name


def _refuse_overwrite(outputs: list[Path], inputs: list[Path]) -> None:
    """No output may be an input: the same path, or (links, case, ..) the same file on disk. Linear in the
    number of files (a folder of thousands of photos is checked in a blink)."""
    by_path = {_fold(str(i.resolve())): i for i in inputs}
    by_inode = {}
    for i in inputs:
        try:
            st = i.stat()
        except OSError:
            continue
        by_inode[(st.st_dev, st.st_ino)] = i
    hit = set()
    for out in outputs:
        same = by_path.get(_fold(str(out.resolve())))
        if same is None and out.exists():
            st = out.stat()
            same = by_inode.get((st.st_dev, st.st_ino))
        if same is not None:
            hit.add(same.name)
    if hit:
        raise UsageError(f"the output would overwrite the input {', '.join(sorted(hit))}; give another output name "
                         "or folder, or a --suffix")


def _check_outputs(jobs: list[Job], compare: bool) -> None:
    """Formats quantsr can write, folders that can be written, no output that is a folder."""
    from quantsr.artifacts.atomic import ensure_writable
    from quantsr.artifacts.cards import ArtifactError
    from quantsr.data.image_io import ImageError, output_format

    for job in jobs:
        try:
            output_format(job.output)
        except ImageError as exc:
            raise UsageError(str(exc)) from None
        if job.output.is_dir():
            raise ArtifactError(f"{job.output} is a folder; give an output file name")
    if compare:
        _refuse_overwrite([_compare_path(j.output) for j in jobs], [j.source for j in jobs])
    for folder in sorted({j.output.parent for j in jobs}):
        ensure_writable(folder, folder=True)


def _compare_path(output: Path) -> Path:
    return output.with_name(output.stem + "_compare.png")


def _available_memory() -> int | None:
    try:
        import psutil
    except ImportError:  # pragma: no cover - a dependency
        return None
    return int(psutil.virtual_memory().available)


def cmd_upscale(args: argparse.Namespace) -> int:
    source = args.input_opt or args.input
    output = args.output_opt or args.output
    if args.input_opt and args.input and not args.output and not args.output_opt:
        source, output = args.input_opt, args.input  # `-i IN OUT`: the one positional is the output
    elif args.input_opt and args.input or args.output_opt and args.output:
        raise UsageError("give the input (or output) once: as a positional or with -i/-o, not both")
    if source is None:
        raise UsageError("name an image or a folder to upscale, e.g. quantsr upscale photo.jpg")
    if args.tile is not None and args.tile < 8:
        raise UsageError(f"--tile must be at least 8 px, got {args.tile}")
    if args.max_megapixels is not None and args.max_megapixels <= 0:
        raise UsageError(f"--max-megapixels must be positive, got {args.max_megapixels}")
    model_path, scale, tile = _resolve_model_limits(args)
    runner = None
    if scale is None:  # a checkpoint that says its own scale: the output names need it, so load it first
        from quantsr.runtime.upscale import load_runner, runner_scale

        runner = load_runner(args.model, None, args.bits, threads=args.threads)
        scale = runner_scale(runner) or 4
    jobs, notes = plan_jobs(Path(source), output, scale, suffix=args.suffix, fmt=args.format)
    _check_outputs(jobs, args.compare)
    for note in notes:
        print(f"note: {note}")

    from tqdm import tqdm

    from quantsr.data.image_io import ImageError, open_image, probe_image
    from quantsr.runtime.compare import compare_image
    from quantsr.runtime.output import save_image, streams, upscale_to_file
    from quantsr.runtime.upscale import count_tiles, load_runner

    if runner is None:
        runner = load_runner(args.model, scale, args.bits, threads=args.threads)
    max_pixels = None if args.max_megapixels is None else int(args.max_megapixels * 1e6)
    many = len(jobs) > 1 or Path(source).is_dir()
    done, skipped = 0, []
    for job in jobs:
        start = time.perf_counter()
        try:
            (width, height), frames = probe_image(job.source, max_pixels)
            if frames > 1:
                print(f"quantsr: note: {job.source.name} has {frames} frames; only the first is upscaled",
                      file=sys.stderr)
            limit = _MAX_SIDE.get(job.output.suffix.lower())
            if limit and max(width, height) * scale > limit:
                raise ImageError(f"{job.source}: the {width * scale}x{height * scale} output is larger than "
                                 f"{job.output.suffix} allows ({limit} px a side); write .png or .tif instead "
                                 "(--format png)")
            image = open_image(job.source, max_pixels)
            needed = 0 if streams(image, job.output, args.compare) else width * height * scale**2 * 4 * _MEMORY_FACTOR
            available = _available_memory()
            if available is not None and needed > available:
                raise ImageError(f"{job.source}: the {width * scale}x{height * scale} output needs about "
                                 f"{needed / 2**30:.1f} GiB of memory, {available / 2**30:.1f} GiB is free; "
                                 "split the image or free memory")
            bar = tqdm(total=count_tiles(image.size, tile, args.overlap), unit="tile", desc=job.source.name,
                       disable=True if args.no_progress else None, leave=False)
            with bar:
                size, result = upscale_to_file(image, job.output, scale, runner, tile=tile, overlap=args.overlap,
                                               progress=bar.update, quality=args.quality, keep=args.compare)
        except ImageError as exc:
            if not many:
                raise
            print(f"quantsr: skipped {exc}", file=sys.stderr)
            skipped.append(job.source)
            continue
        except OSError as exc:  # a full disk, a format's own limit: this file is lost, the batch is not
            if not many:
                raise
            print(f"quantsr: skipped {job.source}: cannot write {job.output} ({exc})", file=sys.stderr)
            skipped.append(job.source)
            continue
        done += 1
        print(f"{job.source} -> {job.output} ({size[0]}x{size[1]}, {time.perf_counter() - start:.2f} s)")
        if args.compare:
            path = _compare_path(job.output)
            save_image(compare_image(image, result, label=f"quantsr {model_path.stem}"), path, args.quality)
            print(f"comparison (bicubic | quantsr) -> {path}")
    if many:
        print(f"{done} upscaled, {len(skipped)} skipped" + (" (see the messages above)" if skipped else ""))
    return 1 if skipped else 0


def _resolve_model_limits(args: argparse.Namespace) -> tuple[Path, int | None, int]:
    """(model path, scale, tile) from the flags and, for a ``.pte``, its card, without loading the model: a scale
    the card contradicts and a tile it does not accept are errors here, before the runtime is imported."""
    from quantsr.artifacts.embedded import default_model_path
    from quantsr.runtime.limits import fit_tile, pte_limits

    try:
        path = default_model_path(args.scale or 4, args.bits) if args.model is None else Path(args.model)
    except ValueError as exc:  # no embedded model for this --scale/--bits
        raise UsageError(str(exc)) from None
    if path.suffix != ".pte":
        try:
            return path, args.scale, fit_tile(args.tile, args.overlap, None)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    card, _, max_side = pte_limits(path)
    card_scale = card["scale"] if card else None
    if args.scale is not None and card_scale is not None and card_scale != args.scale:
        raise UsageError(f"{path.name} is a x{card_scale} model; use --scale {card_scale} or another --model")
    try:
        tile = fit_tile(args.tile, args.overlap, max_side)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return path, args.scale or card_scale, tile

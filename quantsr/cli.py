"""The ``quantsr`` command: a thin argparse layer over the library."""
from __future__ import annotations

import argparse
import ast
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from quantsr.cli_mobile import add_mobile_parser


def _parse_kwargs(items: Sequence[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--model-kw expects key=value, got {item!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def _add_model_args(p: argparse.ArgumentParser, weights_help: str) -> None:
    p.add_argument("--model", help="architecture name (see `quantsr models`)")
    p.add_argument("--scale", type=int, default=4, help="upscaling factor (default 4)")
    p.add_argument("--weights", help=weights_help)
    p.add_argument("--model-kw", nargs="*", default=[], metavar="KEY=VALUE",
                   help="architecture options, e.g. num_block=8 num_feat=32")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")


def cmd_models(args: argparse.Namespace) -> int:
    from quantsr.registry import list_models, model_scales

    for name in list_models():
        print(f"{name:<12} x{', x'.join(map(str, model_scales(name)))}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from quantsr.data import BenchmarkSet
    from quantsr.evaluate import evaluate
    from quantsr.pretrained import load_model

    model = load_model(args.model, args.scale, args.weights, _parse_kwargs(args.model_kw))
    sets = [BenchmarkSet.from_name(name, args.scale, args.data_root) for name in args.datasets]
    if args.official_lr:
        sets += [BenchmarkSet.from_name(name, args.scale, args.data_root, official_lr=True)
                 for name in args.official_lr]
    start = time.perf_counter()
    result = evaluate(model, sets, args.scale, tile=args.tile, overlap=args.tile_overlap, device=args.device,
                      progress=not args.no_progress, model_name=args.model or Path(args.weights).stem)
    print(f"{result.model} x{args.scale}" + (f" (tiles {args.tile}, overlap {args.tile_overlap})" if args.tile else ""))
    print(result.table())
    if args.per_image:
        for s in result.sets:
            for im in s.images:
                print(f"  {s.name}/{im.name:<16} {im.psnr:8.3f} {im.ssim:8.4f}")
    print(f"({time.perf_counter() - start:.1f} s)")
    if args.json:
        from quantsr.image_io import write_text_atomic

        write_text_atomic(result.to_json(), args.json)
        print(f"wrote {args.json}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from quantsr.data import BenchmarkSet, PatchDataset, default_data_root
    from quantsr.pretrained import load_weights
    from quantsr.registry import create_model
    from quantsr.trainer import TrainConfig, Trainer

    torch.manual_seed(args.seed)
    model_kwargs = _parse_kwargs(args.model_kw)
    model = create_model(args.model, scale=args.scale, **model_kwargs)
    if args.init_weights:
        load_weights(model, args.init_weights, args.scale)
    train_root = default_data_root() / "train"
    train_dirs = args.train_dirs or [str(train_root / "T91"), str(train_root / "BSD200")]
    data = PatchDataset(train_dirs, args.scale, lr_patch=args.lr_patch, batch_size=args.batch_size,
                        seed=args.seed, show_progress=not args.no_progress)
    val_sets = [BenchmarkSet.from_name(name, args.scale, args.data_root) for name in args.val_sets]
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99))
    milestones = args.milestones or [int(args.iterations * f) for f in (0.5, 0.8, 0.9, 0.95)]
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=args.gamma)
    config = TrainConfig(iterations=args.iterations, val_every=args.val_every,
                         checkpoint_every=args.checkpoint_every, out_dir=args.out, bf16=args.bf16,
                         channels_last=args.channels_last, progress=not args.no_progress, device=args.device)
    metadata = {"model": args.model, "scale": args.scale, "model_kwargs": model_kwargs}
    trainer = Trainer(model, data, torch.nn.L1Loss(), optimizer, scheduler, val_sets=val_sets, config=config,
                      metadata=metadata)
    last = Path(args.out) / "last.pt"
    if args.resume:
        if trainer.resume():
            print(f"resumed from {last} at iteration {trainer.iteration}")
        else:
            print(f"no {last} yet: starting from iteration 0")
    elif last.exists():
        raise ValueError(f"{last} exists; pass --resume to continue it, or choose another --out")
    history = trainer.fit()
    total = history.data_seconds + history.step_seconds
    if total > 0:
        print(f"done: {trainer.iteration} iterations, {trainer.iteration / total:.2f} it/s, "
              f"data wait {100 * history.data_seconds / total:.1f}% of the time")
    if history.validation:
        print(f"best validation PSNR {history.best_psnr:.3f} dB; checkpoints in {args.out}")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    import dataclasses

    from quantsr.pretrained import find_checkpoint, load_model
    from quantsr.qat import PRESETS, QATConfig, quantize_checkpoint

    settings = dict(PRESETS[args.preset]) if args.preset else {}
    for f in dataclasses.fields(QATConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            settings[f.name] = value
    qat = QATConfig(**settings)
    model_kwargs = _parse_kwargs(args.model_kw)
    teacher = load_model(args.model, args.scale, args.weights, model_kwargs)
    source = str(args.weights or find_checkpoint(args.model, args.scale))
    card = quantize_checkpoint(teacher, args.model, args.scale, qat, args.out, model_kwargs=model_kwargs,
                               teacher_source=source, resume=args.resume, progress=not args.no_progress)
    print(f"{args.model} x{args.scale} W{qat.w_bits}A{qat.a_bits}, {card['iterations']} iterations")
    print(f"{'set':<10} {'PSNR':>8} {'SSIM':>8} {'FP PSNR':>8} {'drop':>7}")
    for r in card["results"]:
        print(f"{r['set']:<10} {r['psnr']:>8.3f} {r['ssim']:>8.4f} {r['fp_psnr']:>8.3f} {r['drop_db']:>7.3f}")
    print(f"wrote {args.out}/model.pt and {args.out}/model_card.json")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from quantsr.export.card import FORMATS, export_checkpoint

    start = time.perf_counter()

    def stage(name: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f} s] {name}", flush=True)

    formats = FORMATS if args.format == "all" else (args.format,)
    cards = export_checkpoint(args.checkpoint, args.out, formats=formats, tile=args.tile, quant=args.quant,
                              evaluate_set5=not args.no_eval, stage=stage)
    for card in cards:
        psnr = "" if card["set5_psnr"] is None else f", Set5 {card['set5_psnr']:.3f} dB ({card['set5_psnr_of']})"
        print(f"wrote {Path(args.out) / card['file']}: {card['bytes'] / 1e6:.3f} MB "
              f"(gzip {card['gzip_bytes'] / 1e6:.3f} MB){psnr}")
    return 0


def _output_for(src: Path, out: str | None, scale: int, many: bool) -> Path:
    if many:
        folder = Path(out) if out else src.parent.with_name(src.parent.name + f"_x{scale}")
        return folder / (src.stem + ".png")
    return Path(out) if out else src.with_name(f"{src.stem}_x{scale}.png")


def cmd_upscale(args: argparse.Namespace) -> int:
    from PIL import Image
    from tqdm import tqdm

    from quantsr.atomic import atomic_write
    from quantsr.image_io import ImageError, list_images
    from quantsr.upscale import compare_image, count_tiles, cpu_upscale, load_runner

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


def cmd_bench(args: argparse.Namespace) -> int:
    import json

    from quantsr.bench import bench, deploy_variants, rows_to_json, table
    from quantsr.image_io import write_text_atomic

    start = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f} s] {message}", flush=True)

    variants, scale = deploy_variants(args.checkpoint, args.out, with_set5=not args.no_eval, reuse=args.reuse,
                                      progress=progress)
    rows = bench(variants, args.sizes, scale, rounds=args.rounds, progress=progress)
    print(table(rows))
    if args.json:
        write_text_atomic(json.dumps({"checkpoint": str(args.checkpoint), "threads": torch_threads(),
                                      "rows": rows_to_json(rows)}, indent=1), args.json)
    return 0


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _parse_size(text: str) -> tuple[int, int, int]:
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected CxHxW such as 3x64x64, got {text!r}")
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


def cmd_profile(args: argparse.Namespace) -> int:
    from quantsr.profile import profile
    from quantsr.quant.api import is_body_layer
    from quantsr.registry import create_model

    model = create_model(args.model, scale=args.scale, **_parse_kwargs(args.model_kw))
    bits_fn = None
    if args.body_bits:
        w_bits, a_bits = args.body_bits

        def bits_fn(fqn, module):  # simulate a bit assignment: body layers low-bit, the rest FP32
            return (w_bits, a_bits) if is_body_layer(module, fqn) else None

    report = profile(model, args.input, bits_fn=bits_fn)
    print(report.table(top=args.top))
    if args.json:
        import json

        from quantsr.image_io import write_text_atomic

        write_text_atomic(json.dumps(report.to_dict(), indent=1), args.json)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quantsr", description="Low-bit image super-resolution.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list registered architectures")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("quantize", help="QuantSR+ quantization-aware training from an FP checkpoint")
    _add_model_args(p, "FP teacher checkpoint (default: the known public one)")
    p.add_argument("--out", required=True, help="run folder (checkpoints, model.pt, model_card.json)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--preset", choices=["paper", "cpu-2h"], help="paper: 500k iterations, batch 128 (GPUs)")
    p.add_argument("--w-bits", dest="w_bits", type=int)
    p.add_argument("--a-bits", dest="a_bits", type=int)
    p.add_argument("--weight-quantizer", dest="weight_quantizer", choices=["rbd", "lsq"])
    p.add_argument("--rounding", choices=["ste", "soft"])
    p.add_argument("--rest-int8", dest="rest_int8", action="store_const", const=True,
                   help="head/tail/upsampler int8 instead of FP32")
    p.add_argument("--no-distill", dest="distill", action="store_const", const=False, help="L1 only, no SFD")
    p.add_argument("--qsa-keep", dest="qsa_keep", type=int, help="QSA: slim the body to this many blocks")
    p.add_argument("--iterations", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--lr-patch", dest="lr_patch", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--max-train-minutes", dest="max_train_minutes", type=float,
                   help="wall-clock training budget: stop there, checkpoint, evaluate and write the model card")
    p.add_argument("--quantizer-lr-scale", dest="quantizer_lr_scale", type=float,
                   help="lr multiplier for quantizer parameters (steps, tau, s, beta); default 1")
    p.add_argument("--milestones", type=int, nargs="*")
    p.add_argument("--val-every", dest="val_every", type=int)
    p.add_argument("--checkpoint-every", dest="checkpoint_every", type=int)
    p.add_argument("--train-dirs", dest="train_dirs", nargs="+")
    p.add_argument("--bf16", action="store_const", const=True)
    p.add_argument("--channels-last", dest="channels_last", action="store_const", const=True)
    p.add_argument("--seed", type=int)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("upscale", help="upscale a photo (or a folder of photos) on the CPU")
    p.add_argument("input", help="an image file or a folder of images")
    p.add_argument("output", nargs="?", help="output file (or folder); default IN_x4.png (or FOLDER_x4/)")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--bits", type=int, default=4, help="which embedded model: 4 (W4A4, default) or 2 (W2A2)")
    p.add_argument("--model", help="a .pte file or a quantsr checkpoint instead of the embedded model")
    p.add_argument("--tile", type=int, default=256, help="tile side in input pixels (default 256)")
    p.add_argument("--overlap", type=int, default=16, help="tile margin in input pixels (default 16)")
    p.add_argument("--compare", action="store_true", help="also write OUT_compare.png: bicubic | quantsr")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_upscale)

    p = sub.add_parser("bench", help="time eager / .pte fp32 / int8 / QAT (/ onnxruntime) variants, interleaved")
    p.add_argument("checkpoint", help="a QAT checkpoint from `quantsr quantize`")
    p.add_argument("--out", default="runs/bench", help="where the exported variants go")
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 256], help="input sides (default 64 256)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", help="also write the rows as JSON")
    p.add_argument("--no-eval", action="store_true", help="skip Set5 PSNR")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--reuse", action="store_true",
                   help="reuse the exports and Set5 scores of an earlier run in --out (time again, export once)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("export", help="export a checkpoint to verified .pte / .mlpackage files with model cards")
    p.add_argument("checkpoint", help="a quantsr checkpoint (e.g. runs/x/model.pt from `quantsr quantize`)")
    p.add_argument("--format", choices=["pte", "coreml", "all"], default="pte")
    p.add_argument("--out", default="exported", help="output folder (default ./exported)")
    p.add_argument("--tile", type=int, help="fixed input side; default dynamic H/W for .pte, 64 for Core ML")
    p.add_argument("--quant", choices=["learned", "int8", "fp32"],
                   help="default: learned for a QAT checkpoint, fp32 otherwise")
    p.add_argument("--no-eval", action="store_true", help="skip the Set5 PSNR of the artifact")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("profile", help="MACs, BitOPs, OPs and storage per layer, and the reduction vs FP32")
    p.add_argument("--model", required=True)
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--model-kw", nargs="*", default=[], metavar="KEY=VALUE")
    p.add_argument("--input", type=_parse_size, default=(3, 64, 64), help="LR input CxHxW (default 3x64x64)")
    p.add_argument("--body-bits", type=int, nargs=2, metavar=("W", "A"),
                   help="count body layers at W-bit weights / A-bit activations, the rest FP32")
    p.add_argument("--top", type=int, default=None, help="show only the N most expensive layers")
    p.add_argument("--json")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("eval", help="PSNR/SSIM (Y channel) on benchmark sets")
    _add_model_args(p, "checkpoint (public or quantsr); default: the known public one in ../shared/weights")
    p.add_argument("--datasets", nargs="+", default=["Set5", "Set14", "B100"],
                   help="benchmark names under the data root, or folders of HR images")
    p.add_argument("--official-lr", nargs="*", default=[], metavar="SET",
                   help="also evaluate these sets with their official LR folders (e.g. Set5)")
    p.add_argument("--data-root", help="folder holding the benchmark sets (default ../shared/data/benchmark)")
    p.add_argument("--tile", type=int, default=None, help="LR tile size for large images (default: whole image)")
    p.add_argument("--tile-overlap", type=int, default=32, help="LR pixels of context around each tile")
    p.add_argument("--json", help="also write the results as JSON here")
    p.add_argument("--per-image", action="store_true", help="print every image's scores")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("train", help="train an FP SR model (L1, Adam, multi-step LR), resumable")
    _add_model_args(p, "unused for train; see --init-weights")
    p.add_argument("--init-weights", help="start from these weights")
    p.add_argument("--out", required=True, help="run folder for last.pt / best.pt")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--iterations", type=int, default=10000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr-patch", type=int, default=48, help="LR patch size (HR patch = scale x this)")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--milestones", type=int, nargs="*", help="LR decay iterations (default 50/80/90/95%%)")
    p.add_argument("--gamma", type=float, default=0.5)
    p.add_argument("--val-every", type=int, default=1000)
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--train-dirs", nargs="+", help="HR training folders (default T91 + BSD200)")
    p.add_argument("--val-sets", nargs="*", default=["Set5"])
    p.add_argument("--data-root", help="folder holding the benchmark sets")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (fast only on CPUs with AVX512-BF16/AMX, and on GPUs)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train)

    add_mobile_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    from quantsr.image_io import ImageError

    try:
        return args.func(args)
    except (ImageError, ValueError, FileNotFoundError, FloatingPointError) as exc:
        print(f"quantsr: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("quantsr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

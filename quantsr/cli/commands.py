"""The ``quantsr`` subcommands. Each imports what it needs when it runs, so building the parser stays light."""
from __future__ import annotations

import argparse
import ast
import time
from collections.abc import Sequence
from pathlib import Path


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


def cmd_models(args: argparse.Namespace) -> int:
    from quantsr.models.registry import get_descriptor, list_models

    print(f"{'name':<10} {'scales':<12} {'tiles':<6} {'min side':>8}  public weights")
    for name in list_models():
        d = get_descriptor(name)
        weights = ", ".join(w.file for w in d.public_weights) or "-"
        scales = "x" + ", x".join(map(str, d.scales))
        print(f"{name:<10} {scales:<12} {'exact' if d.tile_exact else 'close':<6} {d.min_side:>8}  {weights}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from quantsr.checkpoints.load import load_model_and_info
    from quantsr.data.datasets import BenchmarkSet
    from quantsr.eval.evaluate import evaluate

    model, info = load_model_and_info(args.weights, model=args.model, scale=args.scale,
                                      model_kwargs=_parse_kwargs(args.model_kw))
    scale = info.scale
    sets = [BenchmarkSet.from_name(name, scale, args.data_root) for name in args.datasets]
    if args.official_lr:
        sets += [BenchmarkSet.from_name(name, scale, args.data_root, official_lr=True) for name in args.official_lr]
    start = time.perf_counter()
    result = evaluate(model, sets, scale, tile=args.tile, overlap=args.tile_overlap, device=args.device,
                      progress=not args.no_progress, model_name=args.model or Path(args.weights).stem)
    print(f"{result.model} x{scale}" + (f" (tiles {args.tile}, overlap {args.tile_overlap})" if args.tile else ""))
    print(result.table())
    if args.per_image:
        for s in result.sets:
            for im in s.images:
                print(f"  {s.name}/{im.name:<16} {im.psnr:8.3f} {im.ssim:8.4f}")
    print(f"({time.perf_counter() - start:.1f} s)")
    if args.json:
        from quantsr.artifacts.atomic import write_text_atomic

        write_text_atomic(result.to_json(), args.json)
        print(f"wrote {args.json}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from quantsr.checkpoints.format import checkpoint_metadata
    from quantsr.checkpoints.load import DEFAULT_SCALE
    from quantsr.data.datasets import BenchmarkSet, PatchDataset, default_data_root
    from quantsr.models.registry import create_model
    from quantsr.models.weights import load_weights
    from quantsr.train.trainer import TrainConfig, Trainer, default_milestones

    if args.model is None:
        raise ValueError("name the architecture to train with --model (see `quantsr models`)")
    args.scale = args.scale or DEFAULT_SCALE
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
    milestones = args.milestones or default_milestones(args.iterations)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=args.gamma)
    config = TrainConfig(iterations=args.iterations, val_every=args.val_every,
                         checkpoint_every=args.checkpoint_every, out_dir=args.out, bf16=args.bf16,
                         channels_last=args.channels_last, progress=not args.no_progress, device=args.device)
    metadata = checkpoint_metadata(args.model, args.scale, model_kwargs)
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

    from quantsr.checkpoints.load import load_model_and_info
    from quantsr.models.weights import find_checkpoint
    from quantsr.qat.config import PRESETS, TrainRecipe
    from quantsr.qat.pipeline import quantize_checkpoint
    from quantsr.quant.recipe import QuantRecipe

    settings = dict(PRESETS[args.preset]) if args.preset else {}
    for f in dataclasses.fields(TrainRecipe):
        value = getattr(args, f.name, None)
        if value is not None:
            settings[f.name] = value
    train = TrainRecipe(**settings)
    recipe_fields = {f.name for f in dataclasses.fields(QuantRecipe)}
    recipe = QuantRecipe(**{k: v for k, v in vars(args).items() if k in recipe_fields and v is not None},
                         head_tail_bits=8 if args.rest_int8 else 32)
    model_kwargs = _parse_kwargs(args.model_kw)
    teacher, info = load_model_and_info(args.weights, model=args.model, scale=args.scale, model_kwargs=model_kwargs)
    if info.recipe is not None:
        raise ValueError(f"{args.weights} is already a low-bit checkpoint; quantize from an FP teacher")
    source = str(args.weights or find_checkpoint(info.model, info.scale))
    card = quantize_checkpoint(teacher, info.model, info.scale, recipe, train, args.out, model_kwargs=model_kwargs,
                               teacher_source=source, resume=args.resume, progress=not args.no_progress)
    print(f"{info.model} x{info.scale} W{recipe.w_bits}A{recipe.a_bits}, {card['iterations']} iterations")
    print(f"{'set':<10} {'PSNR':>8} {'SSIM':>8} {'FP PSNR':>8} {'drop':>7}")
    for r in card["results"]:
        print(f"{r['set']:<10} {r['psnr']:>8.3f} {r['ssim']:>8.4f} {r['fp_psnr']:>8.3f} {r['drop_db']:>7.3f}")
    print(f"wrote {args.out}/model.pt and {args.out}/model_card.json")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from quantsr.export.pipeline import FORMATS, export_checkpoint

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


def cmd_bench(args: argparse.Namespace) -> int:
    import json

    from quantsr.artifacts.atomic import write_text_atomic
    from quantsr.bench.desktop import bench, deploy_variants, rows_to_json, table

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


def cmd_profile(args: argparse.Namespace) -> int:
    from quantsr.eval.opcount import profile
    from quantsr.models.registry import create_model
    from quantsr.quant.configs import is_body_layer

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

        from quantsr.artifacts.atomic import write_text_atomic

        write_text_atomic(json.dumps(report.to_dict(), indent=1), args.json)
    return 0



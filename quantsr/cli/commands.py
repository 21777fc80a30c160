"""The ``quantsr`` subcommands. Each imports what it needs when it runs, so building the parser stays light."""
from __future__ import annotations

import argparse
import ast
import time
from collections.abc import Sequence
from pathlib import Path

from quantsr.cli.errors import UsageError


def _parse_kwargs(items: Sequence[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--model-kw expects key=value, got {item!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def _check_json_output(path: str | None) -> None:
    """A --json file that cannot be written fails before the work, not after it."""
    if path:
        from quantsr.artifacts.atomic import ensure_writable

        ensure_writable(path)


def _print_embedded() -> None:
    import json

    from quantsr.artifacts.cards import card_path
    from quantsr.artifacts.embedded import embedded_models, pick_embedded

    models = embedded_models()
    defaults = {pick_embedded(models, s, w) for s, w, _ in models}
    print(f"{'file':<22} {'scale':>5} {'--bits':<8} {'bytes':>9} {'Set5 dB':>8}")
    for (scale, w, a), path in sorted(models.items()):
        card = json.loads(card_path(path).read_text()) if card_path(path).is_file() else {}
        psnr = card.get("set5_psnr")
        flag = f"{w}, w{w}a{a}" if path in defaults else f"w{w}a{a}"
        print(f"{path.name:<22} {'x' + str(scale):>5} {flag:<8} {path.stat().st_size:>9,} "
              f"{'-' if psnr is None else f'{psnr:.3f}':>8}")


def cmd_models(args: argparse.Namespace) -> int:
    from quantsr.models.registry import get_descriptor, list_models

    if args.embedded:
        _print_embedded()
        return 0

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

    _check_json_output(args.json)
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
    from quantsr.train.checkpoint import load_checkpoint
    from quantsr.train.distributed import RankShard, check_divisible, finish_distributed, init_distributed
    from quantsr.train.resume import TRAIN_DEFAULTS, TRAIN_RESUMABLE, merge_resume_settings
    from quantsr.train.trainer import TrainConfig, Trainer, default_milestones

    # The flags given (the parser's defaults are None); a resume checks them against the run's saved settings and
    # takes the saved values of the others, so `--resume` alone continues exactly the saved run.
    given = {name: getattr(args, name) for name in TRAIN_DEFAULTS
             if name != "model_kwargs" and getattr(args, name) is not None}
    if args.model_kw is not None:
        given["model_kwargs"] = _parse_kwargs(args.model_kw)
    last = Path(args.out) / "last.pt"
    if last.exists() and not args.resume:
        raise ValueError(f"{last} exists; pass --resume to continue it, or choose another --out")
    changes: list[str] = []
    ckpt = None
    if args.resume and last.is_file():  # checked before anything is built, so a refused resume costs nothing
        ckpt = load_checkpoint(last)
        given, changes = merge_resume_settings(ckpt.get("run_settings") or None, given, source=str(last),
                                               allowed=TRAIN_RESUMABLE, reached=int(ckpt["iteration"]),
                                               flags={"model_kwargs": "--model-kw"})
    s = {**TRAIN_DEFAULTS, **given}
    if s["model"] is None:
        raise ValueError("name the architecture to train with --model (see `quantsr models`)")
    # Resolved, so the saved settings say what the run used even if a default changes later.
    s["scale"] = s["scale"] or DEFAULT_SCALE
    if not s["train_dirs"]:  # the data folder is looked up only when it is needed
        train_root = default_data_root() / "train"
        s["train_dirs"] = [str(train_root / "T91"), str(train_root / "BSD200")]
    s["milestones"] = s["milestones"] or default_milestones(s["iterations"])
    # Under torchrun: this rank's place and device (cuda -> cuda:LOCAL_RANK); --batch-size stays the global batch.
    context, device = init_distributed(s["device"])
    check_divisible(s["batch_size"], context.world_size)
    progress = not args.no_progress and context.is_main
    torch.manual_seed(s["seed"])
    model = create_model(s["model"], scale=s["scale"], **s["model_kwargs"])
    if s["init_weights"]:
        load_weights(model, s["init_weights"], s["scale"])
    data = PatchDataset(s["train_dirs"], s["scale"], lr_patch=s["lr_patch"], batch_size=s["batch_size"],
                        seed=s["seed"], show_progress=progress)
    val_sets = [BenchmarkSet.from_name(name, s["scale"], s["data_root"]) for name in s["val_sets"]]
    optimizer = torch.optim.Adam(model.parameters(), lr=s["lr"], betas=(0.9, 0.99))
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=s["milestones"], gamma=s["gamma"])
    config = TrainConfig(iterations=s["iterations"], val_every=s["val_every"],
                         checkpoint_every=s["checkpoint_every"], out_dir=args.out, bf16=s["bf16"],
                         channels_last=s["channels_last"], progress=progress, device=device)
    metadata = checkpoint_metadata(s["model"], s["scale"], s["model_kwargs"])
    shard = RankShard(data, context, s["batch_size"]) if context.enabled else data
    trainer = Trainer(model, shard, torch.nn.L1Loss(), optimizer, scheduler, val_sets=val_sets, config=config,
                      metadata=metadata, run_settings=s, dist=context)
    if args.resume:
        resumed = trainer.resume(ckpt)  # every rank loads the same last.pt; rank 0 says so
        ckpt = None  # the weights and optimizer state are in the trainer now
        if resumed and context.is_main:
            print(f"resumed from {last} at iteration {trainer.iteration}")
            for line in changes:
                print(f"  {line}")
        elif context.is_main:
            print(f"no {last} yet: starting from iteration 0")
    history = trainer.fit()
    finish_distributed()
    if not context.is_main:
        return 0
    total = history.data_seconds + history.step_seconds
    if total > 0:
        print(f"done: {trainer.iteration} iterations, {trainer.iteration / total:.2f} it/s, "
              f"data wait {100 * history.data_seconds / total:.1f}% of the time")
    if history.validation:
        print(f"best validation PSNR {history.best_psnr:.3f} dB; checkpoints in {args.out}")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    import dataclasses

    from quantsr.checkpoints.format import parse_metadata
    from quantsr.checkpoints.load import load_model_and_info
    from quantsr.models.weights import find_checkpoint
    from quantsr.qat.config import PRESETS, TrainRecipe
    from quantsr.qat.pipeline import quantize_checkpoint
    from quantsr.quant.recipe import QuantRecipe
    from quantsr.train.checkpoint import load_checkpoint
    from quantsr.train.resume import cli_flag, merge_resume_settings

    # The flags given (the parser's defaults are None). On a resume the others take the run's saved values, and
    # quantize_checkpoint refuses the given ones that differ from the run's (naming the flag) before it trains.
    train_fields = [f.name for f in dataclasses.fields(TrainRecipe)]
    given = {name: getattr(args, name) for name in train_fields if getattr(args, name, None) is not None}
    preset = dict(PRESETS[args.preset]) if args.preset else {}
    if "init_from" in given:
        given.setdefault("init", "checkpoint")
    bits = {name: getattr(args, name) for name in ("w_bits", "a_bits", "weight_quantizer", "weight_granularity",
                                                   "rounding", "qsa_keep", "concat_steps",
                                                   "call_site_steps")
            if getattr(args, name) is not None}
    if args.rest_int8:
        bits["head_tail_bits"] = 8
    model_kwargs = None if args.model_kw is None else _parse_kwargs(args.model_kw)
    weights, model, scale = args.weights, args.model, args.scale
    last = Path(args.out) / "last.pt"
    ckpt = None
    if args.resume and last.is_file():
        ckpt = load_checkpoint(last)
        settings = ckpt.get("run_settings") or {}
        saved_train = settings.get("train_recipe")
        if saved_train is not None:
            # A preset must describe the resumed run: the lines it sets are not flags one could drop one by one.
            merge_resume_settings(saved_train, {k: v for k, v in preset.items() if k not in given}, source=str(last),
                                  flags={k: f"--preset {args.preset} (its {cli_flag(k)})" for k in preset})
            given = {**{k: v for k, v in saved_train.items() if k in train_fields}, **given}
            preset = {}
        saved = parse_metadata(ckpt.get("metadata") or {}, str(last))
        if saved.recipe is not None:
            bits = {**saved.recipe.to_dict(), **bits}
        weights = weights or settings.get("teacher") or None
        model, scale = model or saved.model, scale or saved.scale
        model_kwargs = saved.model_kwargs if model_kwargs is None else model_kwargs
    train = TrainRecipe(**{**preset, **given})
    recipe = QuantRecipe(**bits)
    teacher, info = load_model_and_info(weights, model=model, scale=scale, model_kwargs=model_kwargs)
    if info.recipe is not None:
        raise ValueError(f"{weights} is already a low-bit checkpoint; quantize from an FP teacher")
    source = str(weights or find_checkpoint(info.model, info.scale))
    # info.model_kwargs: the teacher's own (its metadata) with the --model-kw ones over them, so model.pt says all.
    card = quantize_checkpoint(teacher, info.model, info.scale, recipe, train, args.out,
                               model_kwargs=info.model_kwargs, teacher_source=source, resume=args.resume,
                               progress=not args.no_progress, saved_run=ckpt)
    if not card:  # a torchrun rank other than 0: rank 0 reports
        return 0
    print(f"{info.model} x{info.scale} W{recipe.w_bits}A{recipe.a_bits}, {card['iterations']} iterations")
    print(f"{'set':<10} {'PSNR':>8} {'SSIM':>8} {'FP PSNR':>8} {'drop':>7}")
    for r in card["results"]:
        print(f"{r['set']:<10} {r['psnr']:>8.3f} {r['ssim']:>8.4f} {r['fp_psnr']:>8.3f} {r['drop_db']:>7.3f}")
    print(f"wrote {args.out}/model.pt and {args.out}/model_card.json")
    return 0


def _check_program_file(program: str | None) -> None:
    """Fail in a second, not after minutes of export, when --program names no file."""
    if program and not Path(program).is_file():
        raise FileNotFoundError(f"{program}: no such program file (--program)")


def cmd_export(args: argparse.Namespace) -> int:
    from quantsr.artifacts.atomic import ensure_writable
    from quantsr.export.pipeline import FORMATS, export_checkpoint

    if args.program and args.quant != "static-int8":
        raise UsageError("--program is a fine-tuned static int8 program: add --quant static-int8")
    if args.coreml_target and (args.quant != "static-int8" or args.format == "pte"):
        raise UsageError("--coreml-target is for Core ML packages with int8 activations: add --quant static-int8 "
                         "--format coreml")
    if args.max_side and args.tile:
        raise UsageError("--max-side bounds a dynamic .pte; --tile makes a fixed one: give one of them")
    if not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f"{args.checkpoint}: no such checkpoint")
    _check_program_file(args.program)
    ensure_writable(args.out, folder=True)  # before minutes of export, not after
    start = time.perf_counter()

    def stage(name: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f} s] {name}", flush=True)

    formats = FORMATS if args.format == "all" else (args.format,)
    cards = export_checkpoint(args.checkpoint, args.out, formats=formats, tile=args.tile, quant=args.quant,
                              evaluate_set5=not args.no_eval, program=args.program,
                              coreml_target=args.coreml_target or "iOS18", stage=stage,
                              **({"max_side": args.max_side} if args.max_side else {}))
    for card in cards:
        psnr = "" if card["set5_psnr"] is None else f", Set5 {card['set5_psnr']:.3f} dB ({card['set5_psnr_of']})"
        print(f"wrote {Path(args.out) / card['file']}: {card['bytes'] / 1e6:.3f} MB "
              f"(gzip {card['gzip_bytes'] / 1e6:.3f} MB){psnr}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import json

    from quantsr.artifacts.atomic import write_text_atomic
    from quantsr.bench.desktop import bench, deploy_variants, rows_to_json, table

    _check_json_output(args.json)
    start = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f} s] {message}", flush=True)

    _check_program_file(args.program)
    variants, scale = deploy_variants(args.checkpoint, args.out, with_set5=not args.no_eval, reuse=args.reuse,
                                      program=args.program, progress=progress)
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

    _check_json_output(args.json)
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



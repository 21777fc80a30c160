"""The ``quantsr`` command line: the argument parser and ``main`` (subcommands: :mod:`quantsr.cli.commands`)."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from quantsr import __version__
from quantsr.cli.commands import (
    cmd_bench,
    cmd_eval,
    cmd_export,
    cmd_models,
    cmd_profile,
    cmd_quantize,
    cmd_train,
)
from quantsr.cli.errors import OneLineParser, QuietLibraries, UsageError, apply_resource_flags, one_line
from quantsr.cli.mobile import add_mobile_parser
from quantsr.cli.upscale import cmd_upscale


def _add_model_args(p: argparse.ArgumentParser, weights_help: str) -> None:
    p.add_argument("--model", help="architecture name (see `quantsr models`)")
    p.add_argument("--scale", type=int, help="upscaling factor (default: what the checkpoint says, else 4)")
    p.add_argument("--weights", help=weights_help)
    p.add_argument("--model-kw", nargs="*", default=[], metavar="KEY=VALUE",
                   help="architecture options, e.g. num_block=8 num_feat=32")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="CPU threads (torch and ExecuTorch; default: their choice)")


def _bits(text: str) -> int | str:
    from quantsr.artifacts.embedded import parse_bits

    try:
        w, a = parse_bits(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return w if a is None else f"w{w}a{a}"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    return 0 if text.strip() == "0" else _positive_int(text)


def _quality(text: str) -> int:
    value = _positive_int(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"must be 1-100, got {value}")
    return value


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    """-v/--verbose on every (sub)command, so it may follow the command like every other flag."""
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show the libraries' warnings and log lines, and tracebacks of unexpected errors")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_verbose(child)


def _parse_size(text: str) -> tuple[int, int, int]:
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected CxHxW such as 3x64x64, got {text!r}")
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="quantsr", description="Low-bit image super-resolution.")
    parser.add_argument("--version", action="version", version=f"quantsr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list registered architectures")
    p.add_argument("--embedded", action="store_true", help="list the models shipped in the package instead "
                   "(what `quantsr upscale --scale/--bits` picks from)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("quantize", help="QuantSR+ quantization-aware training from an FP checkpoint")
    _add_model_args(p, "FP teacher checkpoint (default: the known public one)")
    p.add_argument("--out", required=True, help="run folder (checkpoints, model.pt, model_card.json)")
    p.add_argument("--resume", action="store_true",
                   help="continue OUT/last.pt with its saved recipes and teacher; of the flags, only --iterations "
                        "(to extend it), --max-train-minutes, --val-every, --checkpoint-every and --device may differ")
    p.add_argument("--preset", choices=["paper", "cpu-2h"], help="paper: 500k iterations, batch 128 (GPUs)")
    p.add_argument("--w-bits", dest="w_bits", type=int)
    p.add_argument("--a-bits", dest="a_bits", type=int)
    p.add_argument("--weight-quantizer", dest="weight_quantizer", choices=["rbd", "lsq"])
    p.add_argument("--weight-granularity", dest="weight_granularity",
                   choices=["per_tensor", "per_channel", "per_channel_oriented"],
                   help="one weight step per tensor (the paper's setting, default) or per output channel; "
                        "per_channel_oriented: per channel, each channel's asymmetric grid mirrored where its "
                        "largest weights are negative (a negative step)")
    p.add_argument("--rounding", choices=["ste", "soft"])
    p.add_argument("--rest-int8", dest="rest_int8", action="store_const", const=True,
                   help="head/tail/upsampler int8 instead of FP32")
    p.add_argument("--no-distill", dest="distill", action="store_const", const=False, help="L1 only, no SFD")
    p.add_argument("--distill-target", dest="distill_target", choices=["features", "output"],
                   help="what the student learns from its FP teacher: features (SFD, the paper's, default; needs "
                        "a body of residual blocks) or output (L1 to the teacher's output; any architecture)")
    p.add_argument("--hr-weight", dest="hr_weight", type=float,
                   help="with --distill-target output: weight of L1 to the HR patch next to L1 to the teacher's "
                        "output (default 1; 0: learn the teacher's output alone)")
    p.add_argument("--concat-steps", dest="concat_steps", action="store_const", const=True,
                   help="one activation step per branch at the input of each conv over a concat (fusion convs)")
    p.add_argument("--call-site-steps", dest="call_site_steps", action="store_const", const=True,
                   help="a block run several times with one set of weights (CARN-M's recursive block) gets its "
                        "own activation quantizers at each call")
    p.add_argument("--qsa-keep", dest="qsa_keep", type=int, help="QSA: slim the body to this many blocks")
    p.add_argument("--iterations", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--lr-patch", dest="lr_patch", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--edge-candidates", dest="edge_candidates", type=int,
                   help="each training patch is the most edge-rich of N random crops (default 1: uniform crops)")
    p.add_argument("--max-train-minutes", dest="max_train_minutes", type=float,
                   help="wall-clock training budget: stop there, checkpoint, evaluate and write the model card")
    p.add_argument("--quantizer-lr-scale", dest="quantizer_lr_scale", type=float,
                   help="lr multiplier for quantizer parameters (steps, tau, s, beta); default 1")
    p.add_argument("--milestones", type=int, nargs="*")
    p.add_argument("--init", choices=["lsq", "mse", "block"],
                   help="the student's starting point: the quantizers' LSQ initial values (default), PTQ steps "
                        "by least squared error, or those followed by block-wise reconstruction to the teacher")
    p.add_argument("--init-from", dest="init_from", metavar="CKPT",
                   help="start from this low-bit checkpoint of the same recipe (a quantize run's model.pt or "
                        "last.pt) instead of --init: train a finished model again on a fresh schedule")
    p.add_argument("--init-samples", dest="init_samples", type=int,
                   help="calibration patches for --init mse/block (default 64)")
    p.add_argument("--init-iterations", dest="init_iterations", type=int,
                   help="Adam steps per block for --init block (default 400)")
    p.add_argument("--val-every", dest="val_every", type=int)
    p.add_argument("--checkpoint-every", dest="checkpoint_every", type=int)
    p.add_argument("--train-dirs", dest="train_dirs", nargs="+")
    p.add_argument("--bf16", action="store_const", const=True)
    p.add_argument("--channels-last", dest="channels_last", action="store_const", const=True)
    p.add_argument("--seed", type=int)
    p.add_argument("--no-progress", action="store_true")
    # None: not given, so a resume takes the run's saved value (cmd_quantize fills the defaults otherwise).
    p.set_defaults(func=cmd_quantize, model_kw=None, device=None)

    p = sub.add_parser("upscale", help="upscale a photo (or a folder of photos) on the CPU",
                       description="Upscale a photo or a folder of photos with an embedded low-bit model. Never "
                                   "overwrites an input; ICC profile and EXIF are kept.")
    p.add_argument("input", nargs="?", help="an image file or a folder of images")
    p.add_argument("output", nargs="?",
                   help="output file or folder (default: IN_x4.png beside the input, or FOLDER_x4/)")
    p.add_argument("-i", "--input", dest="input_opt", metavar="INPUT", help="the same as the first positional")
    p.add_argument("-o", "--output", dest="output_opt", metavar="OUTPUT", help="the same as the second positional; "
                   "an existing folder receives the file under its default name")
    p.add_argument("-s", "--scale", type=_positive_int, default=None,
                   help="upscaling factor (default: the model's own; the embedded models are x4 and x2)")
    p.add_argument("--bits", type=_bits, default=4,
                   help="which embedded model: weight bits (4, the default) or weight and activation bits (w4a8); "
                        "`quantsr models --embedded` lists them")
    p.add_argument("-m", "--model", help="a .pte file or a quantsr checkpoint instead of the embedded model")
    p.add_argument("--suffix", default=None,
                   help="added to output names (default: _x4 beside the inputs, none in another folder)")
    p.add_argument("-f", "--format", choices=["png", "jpg", "webp", "bmp", "tiff"], default=None,
                   help="output format (default: from the output name, else png)")
    p.add_argument("-q", "--quality", type=_quality, default=95, help="JPEG/WebP quality 1-100 (default 95)")
    p.add_argument("-t", "--tile", type=_positive_int, default=None,
                   help="tile side in input pixels (default 256, or what the .pte accepts)")
    p.add_argument("--overlap", type=_non_negative_int, default=16, help="tile margin in input pixels (default 16)")
    p.add_argument("--max-megapixels", type=float, default=None,
                   help="refuse inputs above this size (default: PIL's decompression-bomb limit, about 89)")
    p.add_argument("--compare", action="store_true", help="also write OUT_compare.png: bicubic | quantsr")
    p.add_argument("--threads", type=_positive_int, default=None, help="CPU threads (torch and ExecuTorch)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_upscale)

    p = sub.add_parser("bench", help="time eager / .pte fp32 / int8 / QAT (/ onnxruntime) variants, interleaved")
    p.add_argument("checkpoint", help="a QAT checkpoint from `quantsr quantize`, or an FP one (public weights too)")
    p.add_argument("--out", default="runs/bench", help="where the exported variants go")
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 256], help="input sides (default 64 256)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", help="also write the rows as JSON")
    p.add_argument("--no-eval", action="store_true", help="skip Set5 PSNR")
    p.add_argument("--threads", type=_positive_int, default=None, help="CPU threads (torch and ExecuTorch)")
    p.add_argument("--reuse", action="store_true",
                   help="reuse the exports and Set5 scores of an earlier run in --out (time again, export once)")
    p.add_argument("--program", help="a fine-tuned int8 program of the QAT checkpoint (benchmarks/int8_finetune.py), "
                   "timed as one more static int8 variant")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("export", help="export a checkpoint to verified .pte / .mlpackage files with model cards")
    p.add_argument("checkpoint", help="a quantsr checkpoint (e.g. runs/x/model.pt from `quantsr quantize`)")
    p.add_argument("--format", choices=["pte", "coreml", "all"], default="pte")
    p.add_argument("--out", default="exported", help="output folder (default ./exported)")
    p.add_argument("--tile", type=int, help="fixed input side; default dynamic H/W for .pte, 64 for Core ML")
    p.add_argument("--quant", choices=["learned", "static-int8", "int8", "fp32"],
                   help="default: learned for a QAT checkpoint, fp32 otherwise; static-int8: every tensor int8 "
                   "(fastest on XNNPACK), checked code for code against its integer-faithful model")
    p.add_argument("--program", help="with --quant static-int8: a fine-tuned int8 program file "
                   "(benchmarks/int8_finetune.py, e.g. checkpoints/imdn_x4_w4a4_int8.pt)")
    p.add_argument("--max-side", type=_positive_int, default=None,
                   help="largest input side a dynamic .pte accepts (default 320); XNNPACK's memory grows with it")
    p.add_argument("--coreml-target", choices=["iOS17", "iOS18"], default=None,
                   help="with --quant static-int8 --format coreml (int8 activations, W8A8): iOS18 stores low-bit "
                   "weights at 4 bits, iOS17 at 8 (default iOS18)")
    p.add_argument("--no-eval", action="store_true", help="skip the Set5 PSNR of the artifact")
    p.add_argument("--threads", type=_positive_int, default=None, help="CPU threads (torch and ExecuTorch)")
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
    p.add_argument("--resume", action="store_true",
                   help="continue OUT/last.pt with its saved settings; of the flags, only --iterations (to extend "
                        "it), --val-every, --checkpoint-every and --device may differ")
    # Defaults are None so that a resume can tell the flags given from those left out (which take the run's
    # saved values); cmd_train fills the real defaults (quantsr.train.resume.TRAIN_DEFAULTS) afterwards.
    from quantsr.train.resume import TRAIN_DEFAULTS as D  # standard library only, like this module

    p.add_argument("--iterations", type=int, help=f"default {D['iterations']}")
    p.add_argument("--batch-size", type=int, help=f"default {D['batch_size']}")
    p.add_argument("--lr-patch", type=int, help=f"LR patch size (HR patch = scale x this; default {D['lr_patch']})")
    p.add_argument("--lr", type=float, help=f"default {D['lr']}")
    p.add_argument("--milestones", type=int, nargs="*", help="LR decay iterations (default 50/80/90/95%%)")
    p.add_argument("--gamma", type=float, help=f"LR decay factor at each milestone (default {D['gamma']})")
    p.add_argument("--val-every", type=int, help=f"default {D['val_every']}")
    p.add_argument("--checkpoint-every", type=int, help=f"default {D['checkpoint_every']}")
    p.add_argument("--train-dirs", nargs="+", help="HR training folders (default T91 + BSD200)")
    p.add_argument("--val-sets", nargs="*", help=f"default {' '.join(D['val_sets'])}; none: no validation")
    p.add_argument("--data-root", help="folder holding the benchmark sets")
    p.add_argument("--bf16", action="store_const", const=True,
                   help="bf16 autocast (fast only on CPUs with AVX512-BF16/AMX, and on GPUs)")
    p.add_argument("--channels-last", action="store_const", const=True)
    p.add_argument("--seed", type=int, help=f"default {D['seed']}")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train, model_kw=None, device=None)

    add_mobile_parser(sub)
    _add_verbose(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; exit codes: 0 success, 1 a failure (or some files skipped, as the output says), 2 a
    usage error. Errors are one line on stderr; tracebacks only for unexpected errors with ``--verbose``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    quiet = QuietLibraries(verbose)
    try:
        with quiet:
            apply_resource_flags(args)
            return args.func(args)
    except UsageError as exc:
        print(f"quantsr: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except (ValueError, OSError, FloatingPointError, MemoryError) as exc:  # ImageError, ArtifactError: ValueErrors
        print(f"quantsr: error: {one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("quantsr: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if verbose:
            raise
        print(f"quantsr: error: {type(exc).__name__}: {one_line(exc)} (unexpected: rerun with --verbose for the "
              "traceback, and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

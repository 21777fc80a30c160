"""``quantsr mobile``: the demo apps' side of the command line (sync models in, bench on a phone, report)."""
from __future__ import annotations

import argparse
from pathlib import Path

from quantsr.artifacts.cards import DEFAULT_MIN_SIDE


def cmd_mobile_sync(args: argparse.Namespace) -> int:
    from quantsr.apps.sync import sync_apps

    results = sync_apps([Path(s) for s in args.sources], args.app, Path(args.assets) if args.assets else None,
                        tile=args.tile, overlap=args.overlap)
    for result in results:
        for m in result.manifest["models"]:
            size = "" if m["bytes"] is None else f", {m['bytes'] / 1e6:.3f} MB"
            print(f"{result.app}: {result.assets / m['file']}: {m['name']}{size}")
        print(f"{result.app}: wrote {result.assets / 'models.json'} ({len(result.manifest['models'])} models)")
        if result.stale:
            print(f"{result.app}: note: {', '.join(p.name for p in result.stale)} not in models.json (left in "
                  "place; delete them to keep them out of the app)")
    return 0


def cmd_mobile_bench_android(args: argparse.Namespace) -> int:
    import json

    from quantsr.artifacts.atomic import atomic_write
    from quantsr.bench.android import AndroidBenchConfig, bench_android
    from quantsr.bench.report import markdown_table

    config = AndroidBenchConfig(iterations=args.iterations, warmup=args.warmup, sizes=tuple(args.sizes),
                                threads=args.threads_on_phone, app=args.app, timeout_s=args.timeout)
    result = bench_android(Path(args.model), config, serial=args.serial)
    print(markdown_table([{**row, "source": row["device"]} for row in result["rows"]]))
    if args.out:
        with atomic_write(args.out, "w") as fh:
            fh.write(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


def cmd_mobile_report(args: argparse.Namespace) -> int:
    from quantsr.artifacts.atomic import atomic_write
    from quantsr.bench.report import load_rows, markdown_table, write_plot

    rows = load_rows([Path(p) for p in args.json])
    table = markdown_table(rows)
    print(table)
    if args.out:
        with atomic_write(args.out, "w") as fh:
            fh.write(table + "\n")
        print(f"wrote {args.out}")
    drawn_with = write_plot(rows, Path(args.plot))
    print(f"wrote {args.plot} ({drawn_with})")
    return 0


def _parse_sides(text: str) -> list[int]:
    try:
        sides = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated sides such as 64,256, got {text!r}") from None
    if not sides or min(sides) < DEFAULT_MIN_SIDE:
        raise argparse.ArgumentTypeError(f"sides must be >= {DEFAULT_MIN_SIDE}, got {text!r}")
    return sides


def add_mobile_parser(sub: argparse._SubParsersAction) -> None:
    mobile = sub.add_parser("mobile", help="the demo apps: copy models in, benchmark on a phone, report")
    commands = mobile.add_subparsers(dest="mobile_command", required=True)

    p = commands.add_parser("sync", help="copy exported models + cards into the apps and write models.json")
    p.add_argument("sources", nargs="*", help=".pte / .mlpackage artifacts or folders of them, each with its "
                   "NAME.pte.json / NAME.mlpackage.json card (default: the embedded models in quantsr/assets)")
    p.add_argument("--app", choices=["android", "ios", "both"], required=True)
    p.add_argument("--assets", help="the app's model folder (default android_demo/app/src/main/assets, "
                   "ios_demo/QuantSRDemo/Models)")
    p.add_argument("--tile", type=int, default=256, help="LR tile side for dynamic-shape models (default 256)")
    p.add_argument("--overlap", type=int, default=16, help="LR margin around each tile (default 16)")
    p.set_defaults(func=cmd_mobile_sync)

    p = commands.add_parser("bench-android", help="time a .pte on an adb-connected phone (demo app or minibench)")
    p.add_argument("model", help="the .pte (its NAME.pte.json card beside it)")
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    p.add_argument("--sizes", type=_parse_sides, default=[64, 256], metavar="S,S",
                   help="input sides (default 64,256)")
    p.add_argument("--threads", dest="threads_on_phone", type=int, default=0, metavar="N",
                   help="ExecuTorch threads on the phone (default 0: its choice)")
    p.add_argument("--serial", help="which device, as `adb devices` lists it")
    p.add_argument("--app", choices=["auto", "demo", "minibench"], default="auto",
                   help="auto (default): the demo app org.quantsr.demo if installed, else org.pytorch.minibench")
    p.add_argument("--timeout", type=float, default=600, help="seconds to wait for the phone (default 600)")
    p.add_argument("--out", help="write the result (rows as `quantsr bench --json`, plus device) here")
    p.set_defaults(func=cmd_mobile_bench_android)

    p = commands.add_parser("report", help="markdown table + latency/PSNR plot from benchmark JSON files")
    p.add_argument("json", nargs="+", help="`quantsr bench --json` and `quantsr mobile bench-android --out` files")
    p.add_argument("--out", help="also write the table here (markdown)")
    p.add_argument("--plot", default="report.svg", help="plot file (default report.svg; .png needs matplotlib)")
    p.set_defaults(func=cmd_mobile_report)

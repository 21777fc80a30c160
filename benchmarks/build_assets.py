"""Turn finished `quantsr quantize` runs into the committed artifacts:

* ``checkpoints/<arch>_x<scale>_w<b>a<b>.pt`` + ``.json`` (the low-bit checkpoint and its training model card),
* ``quantsr/assets/<same>.pte`` + ``.pte.json`` (the embedded default models of ``quantsr upscale``, dynamic H/W):
  the static all-int8 program, with the fine-tuned constants of ``checkpoints/<same>_int8.pt`` when that file
  exists (``benchmarks/int8_finetune.py``), checked code for code against its integer-faithful model on Set5 and
  scored on Set5 through the ExecuTorch runtime (``--dynamic``: the older fp32-glue export instead),
* ``exported/<same>.mlpackage`` and the FP32 ``.mlpackage`` of the teacher, with their sizes in
  ``benchmarks/results/coreml_sizes.json`` (the Core ML size bars), and ``exported/int8_activations/<same>
  .mlpackage``, the same static int8 program as the ``.pte`` with int8 activations (iOS 18, 4-bit weights; size
  under ``<same>_int8_activations``).

    .venv/bin/python benchmarks/build_assets.py runs/imdn_w4a4_1200 runs/imdn_w2a2_1200
    .venv/bin/python benchmarks/build_assets.py checkpoints/imdn_x4_w4a4.pt checkpoints/imdn_x4_w2a2.pt --no-pte
      # from the committed checkpoints: only the Core ML packages and their sizes (~2 min)
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from quantsr.artifacts.atomic import write_text_atomic
from quantsr.checkpoints.load import load_model
from quantsr.export.coreml import export_coreml
from quantsr.export.pipeline import export_checkpoint

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders holding model.pt and model_card.json, or committed "
                        "checkpoints/<name>.pt (with <name>.json beside)")
    parser.add_argument("--no-coreml", action="store_true")
    parser.add_argument("--no-pte", action="store_true", help="skip the embedded .pte files (slow to export)")
    parser.add_argument("--dynamic", action="store_true",
                        help="embed the fp32-glue export (dynamically quantized convs) instead of static int8")
    args = parser.parse_args()
    sizes = {}
    for run in map(Path, args.runs):
        if run.suffix == ".pt":  # an already committed checkpoint
            card = json.loads(run.with_suffix(".json").read_text())
            name = run.stem
        else:
            card = json.loads((run / "model_card.json").read_text())
            bits = card["bits"]["weights"]
            name = f"{card['architecture']}_x{card['scale']}_w{bits}a{card['bits']['activations']}"
            (ROOT / "checkpoints").mkdir(exist_ok=True)
            shutil.copyfile(run / "model.pt", ROOT / "checkpoints" / f"{name}.pt")
            shutil.copyfile(run / "model_card.json", ROOT / "checkpoints" / f"{name}.json")
            print(f"checkpoints/{name}.pt")
        program = ROOT / "checkpoints" / f"{name}_int8.pt"
        static = {} if args.dynamic else {"quant": "static-int8", "program": program if program.is_file() else None}
        ptes = [] if args.no_pte else export_checkpoint(
            ROOT / "checkpoints" / f"{name}.pt", ROOT / "quantsr" / "assets", formats=("pte",),
            stage=lambda s: print("  ", s, flush=True), **static)
        for art in ptes:
            print(f"quantsr/assets/{art['file']}: {art['bytes']:,} bytes, Set5 {art['set5_psnr']} dB "
                  f"(eager {art['eager_set5_psnr']:.3f})")
        if not args.no_coreml:
            arts = export_checkpoint(ROOT / "checkpoints" / f"{name}.pt", ROOT / "exported", formats=("coreml",),
                                     evaluate_set5=False)
            sizes[name] = arts[0]["bytes"]
            teacher = f"{card['architecture']}_x{card['scale']}_fp32"
            if teacher not in sizes:
                fp = load_model(model=card["architecture"], scale=card["scale"])
                sizes[teacher] = export_coreml(fp, ROOT / "exported" / f"{teacher}.mlpackage",
                                               quantize_rest=False).bytes
            print(f"exported/{name}.mlpackage: {sizes[name]:,} bytes = "
                  f"{100 * sizes[name] / sizes[teacher]:.1f}% of the FP32 package ({sizes[teacher]:,})")
            if not args.dynamic:
                a8 = export_checkpoint(ROOT / "checkpoints" / f"{name}.pt", ROOT / "exported" / "int8_activations",
                                       formats=("coreml",), **static)[0]
                sizes[f"{name}_int8_activations"] = a8["bytes"]
                print(f"exported/int8_activations/{name}.mlpackage: {a8['bytes']:,} bytes, weights {a8['weight_bits']}"
                      f" (bits: tensors), Set5 {a8['set5_psnr']} dB (integer-faithful model)")
    if sizes:  # merged into the sizes of the models not rebuilt this time
        path = ROOT / "benchmarks" / "results" / "coreml_sizes.json"
        known = json.loads(path.read_text()) if path.is_file() else {}
        write_text_atomic(json.dumps({**known, **sizes}, indent=1), path)


if __name__ == "__main__":
    main()

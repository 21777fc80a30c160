"""`quantsr mobile`: sync (exported artifacts + cards -> the apps' models.json), bench-android (adb, here with a
fake `adb` on PATH that plays the phone and the demo app / minibench) and report (markdown table + SVG plot)."""
from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from quantsr.apps.sync import default_assets, sync, sync_apps
from quantsr.artifacts.cards import ArtifactError
from quantsr.artifacts.digest import file_digest
from quantsr.artifacts.embedded import PACKAGE_ASSETS
from quantsr.bench.android import (
    BENCH_ROW_FIELDS,
    AndroidBenchConfig,
    bench_android,
    choose_device,
    find_adb,
)
from quantsr.bench.report import load_rows, markdown_table, svg_scatter, write_plot
from quantsr.cli import main as cli_main

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors"


def write_artifact(folder: Path, name: str, *, card: dict | None = None, content: bytes = b"PTE" * 100,
                   **fields) -> Path:
    """An artifact (a file, or a directory for .mlpackage) with the card `quantsr export` would write beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if name.endswith(".mlpackage"):
        (path / "Data").mkdir(parents=True)
        (path / "Data" / "weights.bin").write_bytes(content)
        (path / "Manifest.json").write_text("{}")
    else:
        path.write_bytes(content)
    card = card or {"file": name, "backend": "coreml" if name.endswith(".mlpackage") else "executorch-xnnpack",
                    "architecture": "imdn", "scale": 4, "quant": "learned",
                    "bits": {"weights": 4, "activations": 4, "quantized_layers": 20},
                    "input": {"name": "lr", "dtype": "float32", "shape": None},
                    "output": {"name": "sr", "dtype": "float32", "shape": None}, "dynamic_hw": True, "tile": None,
                    "sha256": file_digest(path), "bytes": len(content), "gzip_bytes": 42, "set5_psnr": 31.3,
                    "set5_psnr_of": "the .pte through the ExecuTorch runtime"}
    card.update(fields)
    (folder / f"{name}.json").write_text(json.dumps(card))
    return path


def fixed(side: int, scale: int = 4) -> dict:
    return {"tile": side, "dynamic_hw": False, "max_side": None,
            "input": {"name": "lr", "dtype": "float32", "shape": [1, 3, side, side]},
            "output": {"name": "sr", "dtype": "float32", "shape": [1, 3, side * scale, side * scale]}}


# ------------------------------------------------------------------------------------------------------ sync
def test_android_sync_writes_a_manifest_the_vectors_agree_with(tmp_path):
    """The manifest has the fields of tests/vectors/models.json (what the Kotlin and Swift parser tests read)."""
    exported = tmp_path / "exported"
    write_artifact(exported, "imdn_w4a4.pte")
    write_artifact(exported, "imdn_w4a4.mlpackage")  # not for Android: ignored
    result = sync([exported], "android", tmp_path / "assets")
    assert (tmp_path / "assets" / "imdn_w4a4.pte").read_bytes() == b"PTE" * 100
    assert (tmp_path / "assets" / "imdn_w4a4.pte.json").is_file()
    assert not (tmp_path / "assets" / "imdn_w4a4.mlpackage").exists()
    written = json.loads((tmp_path / "assets" / "models.json").read_text())
    assert written == result.manifest
    example = json.loads((VECTORS / "models.json").read_text())
    assert written["schema"] == example["schema"] == 1
    assert set(written["models"][0]) == set(example["models"][0])
    model = written["models"][0]
    assert model["name"] == "imdn x4 W4A4" and model["bytes"] == 300 and model["sha256"] == file_digest(
        exported / "imdn_w4a4.pte")
    assert model["tile"] == 256 and model["overlap"] == 16 and model["max_side"] == 320
    assert model["input"]["shape"] is None


def test_sync_reproduces_the_shared_example_manifest(tmp_path):
    """Cards like the models of tests/vectors/models.json give that manifest (but for the fake digests and sizes,
    and max_side, which is only written for dynamic-shape models)."""
    exported = tmp_path / "exported"
    write_artifact(exported, "imdn_x4_w4a4.pte", architecture="IMDN", max_side=1024)
    write_artifact(exported, "imdn_x4_w2a2_t64.pte", architecture="IMDN", bits={"weights": 2, "activations": 2},
                   **fixed(64))
    written = sync([exported], "android", tmp_path / "assets").manifest
    example = json.loads((VECTORS / "models.json").read_text())
    by_file = {m["file"]: m for m in written["models"]}
    for want in example["models"]:
        got = dict(by_file[want["file"]])
        want = dict(want)
        for key in ("sha256", "bytes"):
            assert isinstance(got.pop(key), type(want.pop(key)))
        if want["input"]["shape"] is not None:
            assert "max_side" not in got
            want.pop("max_side")
        assert got == want


def test_ios_sync_in_place_from_export_cards(tmp_path):
    """`quantsr export --format all --out ios_demo/QuantSRDemo/Models`, then sync that folder in place."""
    models = tmp_path / "Models"
    write_artifact(models, "m.pte")
    write_artifact(models, "m.mlpackage", **fixed(64))
    assert cli_main(["mobile", "sync", str(models), "--app", "ios", "--assets", str(models)]) == 0
    manifest = json.loads((models / "models.json").read_text())
    example = json.loads((VECTORS / "models.json").read_text())
    assert manifest["schema"] == example["schema"]
    ml, pte = manifest["models"]  # sorted by file name
    assert set(example["models"][0]) <= set(pte), "same fields as the shared example"
    assert (pte["file"], pte["backend"], pte["tile"], pte["overlap"], pte["input"]["shape"]) == \
        ("m.pte", "executorch-xnnpack", 256, 16, None)
    assert (ml["file"], ml["backend"], ml["tile"]) == ("m.mlpackage", "coreml", 64)
    assert ml["input"]["shape"] == [1, 3, 64, 64]
    assert "max_side" not in ml and pte["max_side"] == 320
    assert ml["sha256"] == file_digest(models / "m.mlpackage")
    assert pte["name"] == "imdn x4 W4A4 (ExecuTorch)" and ml["name"] == "imdn x4 W4A4 (Core ML)"


def test_ios_sync_copies_packages_and_replaces_old_copies(tmp_path):
    exported, models = tmp_path / "exported", tmp_path / "Models"
    write_artifact(exported, "m.mlpackage", content=b"old", **fixed(64))
    sync([exported], "ios", models)
    (models / "m.mlpackage" / "stray.bin").write_bytes(b"x")
    write_artifact(tmp_path / "new", "m.mlpackage", content=b"new", **fixed(64))
    sync([tmp_path / "new"], "ios", models)
    assert (models / "m.mlpackage" / "Data" / "weights.bin").read_bytes() == b"new"
    assert not (models / "m.mlpackage" / "stray.bin").exists()
    assert sorted(p.name for p in models.iterdir()) == ["m.mlpackage", "m.mlpackage.json", "models.json"]


def test_sync_defaults_to_the_embedded_models(tmp_path, capsys):
    (result,) = sync_apps([], "android", tmp_path)
    files = sorted(p.name for p in PACKAGE_ASSETS.glob("*.pte"))
    assert [m["file"] for m in result.manifest["models"]] == files and len(files) >= 2
    for m in result.manifest["models"]:
        assert m["sha256"] == file_digest(tmp_path / m["file"]) and m["max_side"] == 320
    assert cli_main(["mobile", "sync", "--app", "ios", "--assets", str(tmp_path / "ios")]) == 0
    assert "ios: wrote" in capsys.readouterr().out


def test_sync_reports_stale_models(tmp_path):
    write_artifact(tmp_path / "a", "one.pte")
    write_artifact(tmp_path / "b", "two.pte")
    sync([tmp_path / "a"], "android", tmp_path / "assets")
    result = sync([tmp_path / "b"], "android", tmp_path / "assets")
    assert [p.name for p in result.stale] == ["one.pte"]


@pytest.mark.parametrize("case, message", [
    ("empty", "no .pte artifacts in"),
    ("no_card", "no model card m.pte.json beside it"),
    ("sha", "differs from m.pte.json"),
    ("bad_card", "not a JSON model card"),
    ("fixed_too_small", "leaves no tile core with overlap 16"),
    ("tile_too_big", "exceeds its largest input side 320"),
    ("missing", "does not exist"),
])
def test_sync_errors_are_one_clear_line(tmp_path, case, message):
    src = tmp_path / "exported"
    src.mkdir()
    tile = 256
    if case == "no_card":
        (src / "m.pte").write_bytes(b"x")
    elif case == "sha":
        write_artifact(src, "m.pte")
        (src / "m.pte").write_bytes(b"changed after export")
    elif case == "bad_card":
        write_artifact(src, "m.pte")
        (src / "m.pte.json").write_text("{not json")
    elif case == "fixed_too_small":
        write_artifact(src, "m.pte", **fixed(32))
    elif case == "tile_too_big":
        write_artifact(src, "m.pte")
        tile = 512
    elif case == "missing":
        src = tmp_path / "nowhere"
    with pytest.raises(ArtifactError, match=message) as info:
        sync([src], "android", tmp_path / "assets", tile=tile)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "assets" / "models.json").exists(), "nothing is written when a card is wrong"


def test_default_assets_are_the_repository_app_folders(tmp_path):
    assert default_assets("android", [ROOT]) == ROOT / "android_demo" / "app" / "src" / "main" / "assets"
    assert default_assets("ios", [ROOT]) == ROOT / "ios_demo" / "QuantSRDemo" / "Models"
    with pytest.raises(ArtifactError, match="pass --assets"):
        default_assets("android", [tmp_path])


def test_app_model_folders_are_git_ignored():
    assert "app/src/main/assets/" in (ROOT / "android_demo" / ".gitignore").read_text()
    assert "QuantSRDemo/Models/*" in (ROOT / "ios_demo" / ".gitignore").read_text()


# ------------------------------------------------------------------------------------------------ bench-android
def test_bench_row_fields_are_those_of_quantsr_bench():
    import dataclasses

    from quantsr.bench.rows import BenchRow

    assert BENCH_ROW_FIELDS == tuple(f.name for f in dataclasses.fields(BenchRow))


FAKE_ADB = r'''
import json, os, shlex, shutil, sys
from pathlib import Path

state = Path(os.environ["FAKE_ADB_STATE"])
phone = state / "phone"
args = sys.argv[1:]
with open(state / "calls.log", "a") as log:
    log.write(shlex.join(args) + "\n")
if args[:1] == ["-s"]:
    args = args[2:]
cmd, rest = args[0], args[1:]
on_phone = lambda p: phone / p.lstrip("/")
RESULTS = "/storage/emulated/0/Android/data/org.quantsr.demo/files/benchmark_results.json"
MINIBENCH = phone / "data/data/org.pytorch.minibench/files/benchmark_results.json"

if cmd == "devices":
    print("List of devices attached")
    print((state / "devices.txt").read_text(), end="")
elif cmd == "push":
    on_phone(rest[1]).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(rest[0], on_phone(rest[1]))
elif cmd == "logcat" and "-c" in rest:
    (state / "logcat.txt").write_text("")
elif cmd == "logcat":  # the app logs its marker a little later than the first look
    log, pending = state / "logcat.txt", state / "pending.txt"
    print(log.read_text() if log.exists() else "", end="")
    if pending.exists():
        pending.rename(log)
elif cmd == "exec-out" and rest[0] == "cat":
    sys.stdout.write(on_phone(rest[1]).read_text())
elif cmd == "shell":
    words = shlex.split(" ".join(rest))
    if words[:3] == ["pm", "list", "packages"]:
        print("\n".join("package:" + p for p in (state / "packages.txt").read_text().split() if words[3] in p))
    elif words[:2] == ["rm", "-rf"]:
        shutil.rmtree(on_phone(words[2]), ignore_errors=True)
    elif words[:2] == ["mkdir", "-p"]:
        on_phone(words[2]).mkdir(parents=True, exist_ok=True)
    elif words[0] == "run-as":
        if words[2:4] == ["rm", "-f"]:
            MINIBENCH.unlink(missing_ok=True)
        elif MINIBENCH.exists():
            print(MINIBENCH.read_text())
        else:
            sys.exit("run-as: cat: files/benchmark_results.json: No such file or directory")
    elif words[:2] == ["am", "start"]:
        extras = {words[i + 1]: words[i + 2] for i, w in enumerate(words) if w in ("--es", "--ei", "--ez")}
        if words[words.index("-n") + 1].startswith("org.quantsr.demo/"):
            folder = on_phone(extras["model_dir"])
            entry = json.loads((folder / "models.json").read_text())["models"][0]
            assert (folder / entry["file"]).stat().st_size == entry["bytes"], "pushed model and manifest differ"
            rows = [{"variant": entry["name"] + " (executorch-android)", "input": f"{s}x{s}", "median_ms": 2.5 * s,
                     "megapixels_per_s": 1.0, "bytes": entry["bytes"], "gzip_bytes": None, "ideal_bytes": None,
                     "set5_psnr": None, "rss_mb": 80.5, "samples_ms": [2.5 * s] * int(extras["iterations"]),
                     "p90_ms": 2.6 * s, "p99_ms": 2.7 * s, "mean_ms": 2.5 * s, "min_ms": 2.4 * s}
                    for s in map(int, extras["sizes"].split(","))]
            on_phone(RESULTS).parent.mkdir(parents=True, exist_ok=True)
            on_phone(RESULTS).write_text(json.dumps({"device": "Fakephone 9 (API 35)", "rows": rows}))
            (state / "pending.txt").write_text("I quantsr : QUANTSR_BENCHMARK_DONE " + RESULTS + "\n")
        else:
            model = next(on_phone(extras["model_dir"]).glob("*.pte")).stem
            info = {"device": "Fakebrand", "arch": "Fakephone 9", "os": "Android 15"}
            metrics = [{"benchmarkModel": {"name": model}, "metric": m, "actualValue": v, "targetValue": 0.0,
                        "deviceInfo": info}
                       for m, v in [("avg_inference_latency(ms)", 40.0), ("trimmean_inference_latency(ms)", 39.0),
                                    ("model_load_time(ms)", 10.0), ("load_status", 0.0)]]
            MINIBENCH.parent.mkdir(parents=True, exist_ok=True)
            MINIBENCH.write_text(json.dumps(metrics))
        print("Starting: Intent { cmp=" + words[words.index("-n") + 1] + " }\nStatus: ok")
'''


@pytest.fixture()
def phone(tmp_path, monkeypatch):
    """A fake `adb` first on PATH; returns (bin dir, state dir). Write devices.txt / packages.txt to set it up."""
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    adb = bin_dir / "adb"
    adb.write_text(f"#!{sys.executable}\n{FAKE_ADB}")
    adb.chmod(adb.stat().st_mode | stat.S_IXUSR)
    (state / "devices.txt").write_text("FAKE123\tdevice\n")
    (state / "packages.txt").write_text("org.quantsr.demo\n")
    monkeypatch.setenv("FAKE_ADB_STATE", str(state))
    return bin_dir, state


def test_no_adb_is_one_clear_error(tmp_path, monkeypatch, capsys):
    model = write_artifact(tmp_path, "m.pte")
    with pytest.raises(ArtifactError, match="adb not found"):
        find_adb({"PATH": str(tmp_path)})
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("ANDROID_HOME", raising=False)
    monkeypatch.delenv("ANDROID_SDK_ROOT", raising=False)
    assert cli_main(["mobile", "bench-android", str(model)]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("quantsr: error: adb not found") and "\n" not in err


def test_adb_from_android_home(tmp_path, phone):
    home = tmp_path / "sdk"
    (home / "platform-tools").mkdir(parents=True)
    (home / "platform-tools" / "adb").symlink_to(phone[0] / "adb")
    assert find_adb({"PATH": str(tmp_path), "ANDROID_HOME": str(home)}) == home / "platform-tools" / "adb"


@pytest.mark.parametrize("devices, serial, message", [
    ("", None, "no Android device: `adb devices` lists none; connect a phone with USB debugging on"),
    ("A1\tunauthorized\n", None, "A1 is unauthorized: accept the USB debugging prompt"),
    ("A1\tdevice\nB2\tdevice\n", None, r"several Android devices \(A1, B2\): pick one with --serial"),
    ("A1\tdevice\n", "C3", "no Android device C3"),
])
def test_device_problems_are_clear(phone, devices, serial, message):
    bin_dir, state = phone
    (state / "devices.txt").write_text(devices)
    with pytest.raises(ArtifactError, match=message):
        choose_device(bin_dir / "adb", serial)


def test_no_device_from_the_cli(tmp_path, phone, monkeypatch, capsys):
    bin_dir, state = phone
    (state / "devices.txt").write_text("")
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ["PATH"])
    assert cli_main(["mobile", "bench-android", str(write_artifact(tmp_path, "m.pte"))]) == 1  # no phone: a failure
    assert "no Android device: `adb devices` lists none" in capsys.readouterr().err


def test_choose_device_picks_the_serial(phone):
    bin_dir, state = phone
    (state / "devices.txt").write_text("A1\tdevice\nB2\tdevice\n")
    assert choose_device(bin_dir / "adb", "B2") == "B2"


def test_demo_app_flow_gives_bench_rows(tmp_path, phone):
    bin_dir, state = phone
    model = write_artifact(tmp_path / "exported", "imdn_w4a4.pte")
    config = AndroidBenchConfig(iterations=5, warmup=1, sizes=(64, 128))
    result = bench_android(model, config, env={"PATH": str(bin_dir)}, sleep=lambda s: None)
    assert result["device"] == "Fakephone 9 (API 35)" and result["serial"] == "FAKE123"
    assert result["app"] == "org.quantsr.demo"
    assert [r["input"] for r in result["rows"]] == ["64x64", "128x128"]
    for row in result["rows"]:
        assert list(row) == [*BENCH_ROW_FIELDS, "device"]
        assert row["device"] == "Fakephone 9 (API 35)" and len(row["samples_ms"]) == 5
        assert (row["gzip_bytes"], row["set5_psnr"], row["bytes"]) == (42, 31.3, 300)  # from the card
    calls = (state / "calls.log").read_text()
    assert "--es model_dir /data/local/tmp/quantsr" in calls and "--ei iterations 5" in calls
    assert "--es sizes 64,128" in calls and "--ez exit true" in calls
    pushed = state / "phone" / "data" / "local" / "tmp" / "quantsr"
    entry = json.loads((pushed / "models.json").read_text())["models"][0]
    assert entry["file"] == "imdn_w4a4.pte" and entry["sha256"] == file_digest(pushed / "imdn_w4a4.pte")


def test_bench_android_cli_writes_the_rows(tmp_path, phone, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(phone[0]) + os.pathsep + os.environ["PATH"])
    model = write_artifact(tmp_path, "m.pte")
    out = tmp_path / "android.json"
    assert cli_main(["mobile", "bench-android", str(model), "--iterations", "3", "--sizes", "64",
                     "--out", str(out)]) == 0
    assert "| Fakephone 9 (API 35) | 64x64 | 160.00 |" in capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert saved["rows"][0]["median_ms"] == 160.0 and saved["model"] == "m.pte"


def test_minibench_flow_when_the_demo_app_is_missing(tmp_path, phone):
    bin_dir, state = phone
    (state / "packages.txt").write_text("org.pytorch.minibench\n")
    model = write_artifact(tmp_path, "m.pte", **fixed(64))
    result = bench_android(model, AndroidBenchConfig(iterations=4), env={"PATH": str(bin_dir)},
                           sleep=lambda s: None)
    (row,) = result["rows"]
    assert result["app"] == "org.pytorch.minibench" and list(row) == [*BENCH_ROW_FIELDS, "device"]
    assert (row["input"], row["median_ms"], row["device"]) == ("64x64", 39.0, "Fakebrand Fakephone 9 Android 15")
    assert row["megapixels_per_s"] == round(256 * 256 / 1e6 / 0.039, 3)
    assert "--ei num_iter 4" in (state / "calls.log").read_text()


def test_no_benchmark_app_installed(tmp_path, phone):
    bin_dir, state = phone
    (state / "packages.txt").write_text("com.example.other\n")
    with pytest.raises(ArtifactError, match="neither the demo app"):
        bench_android(write_artifact(tmp_path, "m.pte"), env={"PATH": str(bin_dir)})


def test_bench_android_waits_no_longer_than_the_timeout(tmp_path, phone):
    bin_dir, _ = phone
    silent_app = FAKE_ADB.replace('(state / "pending.txt").write_text(', '(state / "never.txt").write_text(')
    (bin_dir / "adb").write_text(f"#!{sys.executable}\n{silent_app}")  # the app never logs its marker
    ticks = iter(range(0, 10_000, 100))
    config = AndroidBenchConfig(timeout_s=250, sizes=(64,))
    model = write_artifact(tmp_path, "m.pte")
    with pytest.raises(ArtifactError, match="no QUANTSR_BENCHMARK_DONE in logcat after 250 s"):
        bench_android(model, config, env={"PATH": str(bin_dir)}, sleep=lambda s: None, clock=lambda: next(ticks))


def test_a_failed_benchmark_on_the_phone_is_reported(tmp_path, phone):
    bin_dir, _ = phone
    failing_app = FAKE_ADB.replace('"I quantsr : QUANTSR_BENCHMARK_DONE " + RESULTS',
                                   '"I quantsr : QUANTSR_BENCHMARK_FAILED: forward: out of memory"')
    (bin_dir / "adb").write_text(f"#!{sys.executable}\n{failing_app}")
    with pytest.raises(ArtifactError, match="benchmark failed on the phone: forward: out of memory"):
        bench_android(write_artifact(tmp_path, "m.pte"), env={"PATH": str(bin_dir)}, sleep=lambda s: None)


# ------------------------------------------------------------------------------------------------------ report
def bench_files(tmp_path: Path) -> list[Path]:
    row = dict.fromkeys(BENCH_ROW_FIELDS)
    desktop = tmp_path / "bench.json"
    desktop.write_text(json.dumps({"checkpoint": "c.pt", "threads": 2, "rows": [
        {**row, "variant": "pte QAT (dynamic)", "input": "64x64", "median_ms": 20.0, "megapixels_per_s": 3.3,
         "bytes": 1156800, "gzip_bytes": 642108, "set5_psnr": 31.335, "rss_mb": 300.0, "samples_ms": [20.0]},
        {**row, "variant": "eager fp32", "input": "64x64", "median_ms": 80.0, "megapixels_per_s": 0.8,
         "bytes": None, "set5_psnr": 32.21, "rss_mb": 300.0}]}))
    android = tmp_path / "android.json"
    android.write_text(json.dumps({"device": "Pixel 8 (API 35)", "rows": [
        {**row, "variant": "imdn x4 W4A4 (executorch-android)", "input": "256x256", "median_ms": 500.0,
         "megapixels_per_s": 2.6, "bytes": 1156800, "gzip_bytes": 642108, "set5_psnr": 31.335,
         "device": "Pixel 8 (API 35)"}]}))
    return [desktop, android]


def test_report_table_and_svg(tmp_path):
    rows = load_rows(bench_files(tmp_path))
    table = markdown_table(rows).splitlines()
    assert table[0] == "| variant | device / source | input | median ms | MP/s | bytes | gzip bytes | Set5 PSNR |"
    assert table[2] == ("| pte QAT (dynamic) | bench.json, 2 threads | 64x64 | 20.00 | 3.30 | 1,156,800 | 642,108 | "
                        "31.335 |")
    assert table[3] == "| eager fp32 | bench.json, 2 threads | 64x64 | 80.00 | 0.80 | — | — | 32.210 |"
    assert table[4].startswith("| imdn x4 W4A4 (executorch-android) | Pixel 8 (API 35) | 256x256 | 500.00 |")
    plot = tmp_path / "report.svg"
    assert write_plot(rows, plot, use_matplotlib=False) == "svg"
    svg = plot.read_text()
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert svg.count("<circle") == 3 and "Pixel 8 (API 35)" in svg and "(log scale)" in svg
    import xml.etree.ElementTree as ET

    ET.fromstring(svg)  # well-formed


def test_report_cli(tmp_path, capsys):
    out, plot = tmp_path / "report.md", tmp_path / "report.svg"
    files = [str(p) for p in bench_files(tmp_path)]
    assert cli_main(["mobile", "report", *files, "--out", str(out), "--plot", str(plot)]) == 0
    printed = capsys.readouterr().out
    assert "| eager fp32 |" in printed and f"wrote {plot}" in printed
    assert out.read_text().count("\n") == 5 and plot.stat().st_size > 500


def test_report_plot_without_psnr_and_bad_files(tmp_path):
    assert "no rows with both a latency and a Set5 PSNR" in svg_scatter([])
    bad = tmp_path / "bad.json"
    bad.write_text('{"something": 1}')
    with pytest.raises(ArtifactError, match="no rows with a \"variant\""):
        load_rows([bad])
    with pytest.raises(ArtifactError, match="only .svg plots"):
        write_plot([], tmp_path / "x.png", use_matplotlib=False)


def test_report_with_matplotlib(tmp_path):
    pytest.importorskip("matplotlib")  # the optional `plot` extra
    rows = load_rows(bench_files(tmp_path))
    assert write_plot(rows, tmp_path / "r.svg", use_matplotlib=True) == "matplotlib"
    assert (tmp_path / "r.svg").stat().st_size > 1000



def test_report_svg_labels_do_not_overlap():
    import re
    import xml.etree.ElementTree as ET

    from quantsr.bench.report import _text_box

    # 13 points, 12 of them within a few ms and hundredths of a dB of each other, with long labels
    points = [(50 + 5 * i + 3 * j, 31.3 + 0.02 * j + 0.01 * i, 1_000_000 + 100_000 * j, f"{v} 64x64 · {dev}")
              for i, dev in enumerate(["Pixel 8 (API 35)", "Galaxy S23", "bench.json, 2 threads"])
              for j, v in enumerate(["pte QAT (dynamic)", "pte int8 PTQ", "eager fp32", "pte QAT (static)"])]
    points.append((400.0, 31.33, 1_146_560, "imdn x4 W4A4 (executorch-android) 256x256 · Pixel 8 (API 35)"))
    svg = svg_scatter(points, width=800, height=500)
    root = ET.fromstring(svg)
    labels = [el for el in root.iter("{http://www.w3.org/2000/svg}text") if el.get("class") == "label"]
    assert sorted(el.text for el in labels) == sorted(p[3] for p in points)
    boxes = [_text_box(float(el.get("x")), float(el.get("y")), el.text, el.get("text-anchor")) for el in labels]
    for i, a in enumerate(boxes):
        assert 0 <= a[0] and a[2] <= 800 and 0 <= a[1] and a[3] <= 500, (labels[i].text, a)  # inside the canvas
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    # tick labels are round numbers, not float noise (31.300000000000004) or needless zeros (31.30)
    ticks = [el.text for el in root.iter("{http://www.w3.org/2000/svg}text") if el.get("text-anchor") == "end"
             and el.get("class") != "label"]
    assert ticks and all(re.fullmatch(r"3\d\.\d", t) for t in ticks), ticks

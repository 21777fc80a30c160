"""``quantsr mobile bench-android``: time a ``.pte`` on a USB-connected Android phone through ``adb``.

The model and a one-model ``models.json`` are pushed to ``/data/local/tmp/quantsr`` and the demo app
(``org.quantsr.demo``, android_demo/) is started in its benchmark mode with ``--es model_dir`` pointing there; the
app logs ``QUANTSR_BENCHMARK_DONE <file>`` and its JSON is read back. Without the demo app, ExecuTorch's benchmark
app (``org.pytorch.minibench``, built from the ExecuTorch sources) is used when installed: it reports a mean
latency on the model's default inputs rather than per-size samples. The result rows have the fields of
``quantsr bench --json`` (quantsr.bench.rows.BenchRow) plus ``device``. Every adb call goes through ``runner`` so tests
can replace the phone. Standard library only.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantsr.apps.sync import manifest_entry
from quantsr.artifacts.cards import DEFAULT_PTE_MAX_SIDE, ArtifactError, load_card
from quantsr.bench.rows import BENCH_ROW_FIELDS

__all__ = ["BENCH_ROW_FIELDS", "AndroidBenchConfig", "bench_android", "choose_device", "find_adb"]

DEMO_PACKAGE = "org.quantsr.demo"
DEMO_ACTIVITY = f"{DEMO_PACKAGE}/.MainActivity"
DEMO_MODEL_DIR = "/data/local/tmp/quantsr"
MINIBENCH_PACKAGE = "org.pytorch.minibench"
MINIBENCH_ACTIVITY = f"{MINIBENCH_PACKAGE}/{MINIBENCH_PACKAGE}.BenchmarkActivity"
MINIBENCH_MODEL_DIR = "/data/local/tmp/minibench"
MINIBENCH_RESULTS = "files/benchmark_results.json"
DONE = re.compile(r"QUANTSR_BENCHMARK_DONE (\S+)")
FAILED = re.compile(r"QUANTSR_BENCHMARK_FAILED:? ?(.*)")


@dataclass
class CommandResult:
    returncode: int
    stdout: str
    stderr: str = ""


Runner = Callable[[Sequence[str]], CommandResult]


def run_command(argv: Sequence[str], timeout_s: float = 300) -> CommandResult:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise ArtifactError(f"`{shlex.join(argv)}` did not finish within {timeout_s:.0f} s") from None
    return CommandResult(proc.returncode, proc.stdout, proc.stderr)


@dataclass
class AndroidBenchConfig:
    iterations: int = 20
    warmup: int = 3
    sizes: tuple[int, ...] = (64, 256)
    threads: int = 0  # ExecuTorch's default
    app: str = "auto"  # "demo", "minibench", or "auto": the demo app if installed, else minibench
    timeout_s: float = 600  # for the whole run on the phone
    poll_s: float = 1.0


def find_adb(env: Mapping[str, str] = os.environ) -> Path:
    """``adb`` on PATH, else in $ANDROID_HOME (or $ANDROID_SDK_ROOT)/platform-tools."""
    found = shutil.which("adb", path=env.get("PATH", ""))
    if found:
        return Path(found)
    for variable in ("ANDROID_HOME", "ANDROID_SDK_ROOT"):
        candidate = Path(env.get(variable) or "/nonexistent") / "platform-tools" / "adb"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ArtifactError("adb not found: install the Android SDK platform-tools and put adb on PATH "
                      "(or set ANDROID_HOME)")


def parse_devices(listing: str) -> dict[str, str]:
    """``adb devices`` output as {serial: state} (state "device" when ready, else "unauthorized", "offline"...)."""
    states = {}
    for line in listing.splitlines():
        words = line.split()
        if len(words) >= 2 and not line.startswith(("*", "List of devices")):
            states[words[0]] = words[1]
    return states


def choose_device(adb: Path, serial: str | None = None, runner: Runner = run_command) -> str:
    """The serial of the one ready device (or of ``serial``), from ``adb devices``."""
    listing = runner([str(adb), "devices"])
    if listing.returncode != 0:
        raise ArtifactError(f"`adb devices` failed: {(listing.stderr or listing.stdout).strip()}")
    states = parse_devices(listing.stdout)
    if serial is not None and serial not in states:
        raise ArtifactError(f"no Android device {serial}: `adb devices` lists {', '.join(states) or 'none'}")
    candidates = {serial: states[serial]} if serial is not None else states
    if not candidates:
        raise ArtifactError("no Android device: `adb devices` lists none; connect a phone with USB debugging on")
    ready = [s for s, state in candidates.items() if state == "device"]
    if not ready:
        first, state = next(iter(candidates.items()))
        hint = "accept the USB debugging prompt on the phone" if state == "unauthorized" else "reconnect it"
        raise ArtifactError(f"Android device {first} is {state}: {hint}")
    if len(ready) > 1:
        raise ArtifactError(f"several Android devices ({', '.join(ready)}): pick one with --serial")
    return ready[0]


class Adb:
    """``adb -s SERIAL ...`` through ``runner``; a failing command becomes a ArtifactError."""

    def __init__(self, adb: Path, serial: str, runner: Runner = run_command) -> None:
        self.adb, self.serial, self.runner = adb, serial, runner

    def __call__(self, *args: str, check: bool = True) -> str:
        result = self.runner([str(self.adb), "-s", self.serial, *args])
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise ArtifactError(f"`adb {shlex.join(args)}` failed: {detail[-1] if detail else 'no output'}")
        return result.stdout

    def shell(self, *words: str, check: bool = True) -> str:
        return self("shell", shlex.join(words), check=check)  # one quoted line: the phone's shell splits it

    def installed(self, package: str) -> bool:
        return f"package:{package}" in self.shell("pm", "list", "packages", package).split()

    def start(self, activity: str, extras: Sequence[str]) -> None:
        out = self.shell("am", "start", "-W", "-S", "-n", activity, *extras)
        if "Error" in out:
            raise ArtifactError(f"cannot start {activity}: {out.strip().splitlines()[-1]}")


def _extras(values: Mapping[str, bool | int | str]) -> list[str]:
    """``am start`` intent extras: --ez for booleans, --ei for integers, --es for strings."""
    out = []
    for key, value in values.items():
        flag = "--ez" if isinstance(value, bool) else "--ei" if isinstance(value, int) else "--es"
        out += [flag, key, str(value).lower() if isinstance(value, bool) else str(value)]
    return out


def _push_fresh(adb: Adb, folder: str, files: Sequence[Path]) -> None:
    adb.shell("rm", "-rf", folder)
    adb.shell("mkdir", "-p", folder)
    for f in files:
        adb("push", str(f), f"{folder}/{f.name}")


def _wait(poll: Callable[[], Any], config: AndroidBenchConfig, what: str, sleep: Callable[[float], None],
          clock: Callable[[], float]) -> Any:
    deadline = clock() + config.timeout_s
    while True:
        result = poll()
        if result is not None:
            return result
        if clock() > deadline:
            raise ArtifactError(f"no {what} after {config.timeout_s:.0f} s; see `adb logcat` on the phone")
        sleep(config.poll_s)


def _run_demo(adb: Adb, model: Path, card: dict[str, Any], config: AndroidBenchConfig,
              sleep: Callable[[float], None], clock: Callable[[], float]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "models.json"
        # the benchmark runs whole inputs, not tiles: any tiling that fits the model will do
        side = (card.get("max_side") or DEFAULT_PTE_MAX_SIDE) if card.get("tile") is None else card["tile"]
        entry = manifest_entry(model, card, tile=min(256, side), overlap=0)
        manifest.write_text(json.dumps({"schema": 1, "models": [entry]}))
        _push_fresh(adb, DEMO_MODEL_DIR, [model, manifest])
    adb("logcat", "-c")
    adb.start(DEMO_ACTIVITY, _extras({
        "benchmark": True, "iterations": config.iterations, "warmup": config.warmup,
        "sizes": ",".join(map(str, config.sizes)), "threads": config.threads, "model_dir": DEMO_MODEL_DIR,
        "model": model.name, "exit": True}))

    def finished() -> str | None:
        log = adb("logcat", "-d", "-s", "quantsr")
        if failed := FAILED.search(log):
            raise ArtifactError(f"the demo app's benchmark failed on the phone: {failed.group(1).strip()}")
        done = DONE.search(log)
        return done.group(1) if done else None

    results = _wait(finished, config, "QUANTSR_BENCHMARK_DONE in logcat", sleep, clock)
    return _parse_json(adb("exec-out", "cat", results), results)


def _run_minibench(adb: Adb, model: Path, config: AndroidBenchConfig, sleep: Callable[[float], None],
                   clock: Callable[[], float]) -> list[dict[str, Any]]:
    _push_fresh(adb, MINIBENCH_MODEL_DIR, [model])
    adb.shell("run-as", MINIBENCH_PACKAGE, "rm", "-f", MINIBENCH_RESULTS, check=False)
    adb.start(MINIBENCH_ACTIVITY, _extras({
        "model_dir": MINIBENCH_MODEL_DIR, "num_iter": config.iterations, "num_warm_up_iter": config.warmup}))

    def finished() -> list | None:
        text = adb.shell("run-as", MINIBENCH_PACKAGE, "cat", MINIBENCH_RESULTS, check=False)
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return None  # not written yet

    return _wait(finished, config, f"{MINIBENCH_RESULTS} from minibench", sleep, clock)


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{where} on the phone is not JSON ({exc}): {text[:200]!r}") from None


def demo_rows(report: dict[str, Any], card: dict[str, Any]) -> list[dict[str, Any]]:
    """The app's rows as BenchRow rows plus ``device``; what the phone does not measure (gzip bytes, Set5 PSNR)
    comes from the model card of the same file."""
    rows = []
    for raw in report.get("rows", []):
        row = {name: raw.get(name) for name in BENCH_ROW_FIELDS}
        row["samples_ms"] = raw.get("samples_ms") or []
        row["gzip_bytes"] = row["gzip_bytes"] if row["gzip_bytes"] is not None else card.get("gzip_bytes")
        row["set5_psnr"] = row["set5_psnr"] if row["set5_psnr"] is not None else card.get("set5_psnr")
        rows.append({**row, "device": report.get("device")})
    return rows


def minibench_rows(metrics: list[dict[str, Any]], model: Path, card: dict[str, Any]) -> list[dict[str, Any]]:
    """minibench's metric list as one row: its trimmed mean (the middle 80 % of the samples) stands in for the
    median; the input is the model's fixed shape, or unknown ("default") for a dynamic one."""
    values = {m.get("metric"): m.get("actualValue") for m in metrics}
    if values.get("load_status", 0):
        raise ArtifactError(f"minibench could not load {model.name} (load_status {values['load_status']})")
    latency = values.get("trimmean_inference_latency(ms)") or values.get("avg_inference_latency(ms)")
    if latency is None:
        raise ArtifactError(f"minibench reported no latency for {model.name}: {sorted(values)}")
    info = next((m.get("deviceInfo") for m in metrics if m.get("deviceInfo")), {}) or {}
    shape = (card.get("input") or {}).get("shape")
    out_pixels = shape[2] * shape[3] * card["scale"] ** 2 if shape else None
    return [{
        "variant": f"{model.stem} (minibench)", "input": f"{shape[3]}x{shape[2]}" if shape else "default",
        "median_ms": round(latency, 2),
        "megapixels_per_s": round(out_pixels / 1e6 / (latency / 1000), 3) if out_pixels else None,
        "bytes": model.stat().st_size, "gzip_bytes": card.get("gzip_bytes"), "ideal_bytes": None,
        "set5_psnr": card.get("set5_psnr"), "rss_mb": None, "samples_ms": [],
        "device": " ".join(str(info.get(k, "")) for k in ("device", "arch", "os")).strip() or None,
    }]


def bench_android(model: Path, config: AndroidBenchConfig | None = None, *, serial: str | None = None,
                  env: Mapping[str, str] = os.environ, runner: Runner = run_command,
                  sleep: Callable[[float], None] = time.sleep,
                  clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Run the benchmark on the phone; returns ``{"device", "app", "model", ..., "rows": [...]}``."""
    config = config or AndroidBenchConfig()
    if model.suffix != ".pte" or not model.is_file():
        raise ArtifactError(f"{model}: not a .pte file (export one with `quantsr export CHECKPOINT`)")
    if config.iterations < 1 or config.warmup < 0:
        raise ArtifactError("--iterations must be >= 1 and --warmup >= 0")
    card = load_card(model)
    max_side = card.get("max_side") or DEFAULT_PTE_MAX_SIDE
    if (card.get("input") or {}).get("shape") is None and (too_big := [s for s in config.sizes if s > max_side]):
        raise ArtifactError(f"{model.name} accepts sides up to {max_side}; --sizes has {too_big[0]}")
    adb_path = find_adb(env)
    adb = Adb(adb_path, choose_device(adb_path, serial, runner), runner)
    app = config.app
    if app == "auto":
        app = "demo" if adb.installed(DEMO_PACKAGE) else "minibench" if adb.installed(MINIBENCH_PACKAGE) else ""
        if not app:
            raise ArtifactError(f"neither the demo app ({DEMO_PACKAGE}) nor minibench ({MINIBENCH_PACKAGE}) is "
                              "installed: build android_demo and `adb install -r app-debug.apk`")
    if app == "demo":
        report = _run_demo(adb, model, card, config, sleep, clock)
        rows, device = demo_rows(report, card), report.get("device")
    else:
        rows = minibench_rows(_run_minibench(adb, model, config, sleep, clock), model, card)
        device = rows[0]["device"]
    return {"source": "adb", "app": DEMO_PACKAGE if app == "demo" else MINIBENCH_PACKAGE, "device": device,
            "serial": adb.serial, "model": model.name, "sha256": card.get("sha256"),
            "iterations": config.iterations, "warmup": config.warmup, "threads": config.threads,
            "set5_psnr_of": f"the model card ({card.get('set5_psnr_of', 'quantsr export')}), not the phone",
            "rows": rows}

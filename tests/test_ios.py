"""The iOS demo (ios_demo/): what can be checked on Linux. There is no Swift compiler or Xcode here, so this runs
ios_demo/ci/check_swift.py (tree-sitter-swift syntax of every .swift file, the pinned project.yml values, the
ExecuTorch / Core ML API allowlist) and checks that the Swift tests' shared vectors exist in the shape they decode.
Swift compilation, `swift test`, the Xcode build, Core ML prediction and device runs need a Mac (ios_demo/README.md).
"""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IOS = ROOT / "ios_demo"
VECTORS = ROOT / "tests" / "vectors"
NEEDED = {"tree_sitter": "tree-sitter", "tree_sitter_swift": "tree-sitter-swift", "yaml": "pyyaml"}


def missing_message(find=importlib.util.find_spec) -> str | None:
    """Why the checks cannot run (a clear install line), or None."""
    missing = [pip for module, pip in NEEDED.items() if find(module) is None]
    if not missing:
        return None
    return (f"the iOS demo checks need {', '.join(missing)}: pip install tree-sitter tree-sitter-swift pyyaml "
            "(or pip install -e '.[dev]')")


@pytest.fixture(scope="module")
def check():
    message = missing_message()
    if message:
        pytest.fail(message, pytrace=False)  # a failure, not a skip: CI must install the dev extras
    spec = importlib.util.spec_from_file_location("check_swift", IOS / "ci" / "check_swift.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while the class is created
    spec.loader.exec_module(module)
    return module


def test_missing_packages_give_the_install_line():
    message = missing_message(lambda module: None if module == "tree_sitter_swift" else object())
    assert message and "tree-sitter-swift" in message and "pip install tree-sitter tree-sitter-swift pyyaml" in message
    assert missing_message(lambda module: object()) is None


def test_ios_demo_passes_check_swift(check):
    report = check.run(IOS)
    assert report.checked_files >= 20, f"only {report.checked_files} Swift files found under {IOS}"
    assert not report.errors, "ios_demo/ci/check_swift.py:\n" + "\n".join(report.errors)


def test_check_swift_main_exit_status(check, capsys):
    assert check.main(["--root", str(IOS)]) == 0
    assert "0 problems: OK" in capsys.readouterr().out


@pytest.fixture()
def demo_copy(tmp_path):
    dst = tmp_path / "ios_demo"
    shutil.copytree(IOS, dst, ignore=shutil.ignore_patterns("Models", "*.xcodeproj", ".build", "DerivedData"))
    return dst


def _edit(path: Path, old: str, new: str) -> None:
    source = path.read_text()
    assert old in source, f"{old!r} not in {path}"
    path.write_text(source.replace(old, new))


def test_check_swift_reports_syntax_errors_with_file_and_line(check, demo_copy):
    bad = demo_copy / "QuantSRCore" / "Sources" / "QuantSRCore" / "Broken.swift"
    bad.write_text("import Foundation\n\nstruct Broken {\n    func f( -> Int { 1 }\n")
    errors = check.run(demo_copy).errors
    assert any(e.startswith("QuantSRCore/Sources/QuantSRCore/Broken.swift:4:") for e in errors), errors


def test_check_swift_catches_apis_outside_the_allowlist(check, demo_copy):
    engines = demo_copy / "QuantSRDemo" / "Sources" / "Engines"
    _edit(engines / "ExecuTorchEngine.swift", "Module(filePath: path, loadMode: .mmap)", "Module(path)")
    _edit(engines / "ExecuTorchEngine.swift", 'module.load("forward")', 'module.execute("forward")')
    _edit(engines / "CoreMLEngine.swift", "model.prediction(from: features)", "model.predictions(from: features)")
    _edit(demo_copy / "QuantSRDemo" / "Sources" / "Views" / "CompareView.swift", "import SwiftUI",
          "import SwiftUI\nimport ExecuTorch")
    text = "\n".join(check.run(demo_copy).errors)
    assert "ExecuTorchEngine.swift" in text and "Module(_:)" in text
    assert ".execute is not in the APPS.md API allowlist" in text
    assert ".predictions is not in the APPS.md API allowlist" in text
    assert "CompareView.swift:2: only" in text


def test_check_swift_catches_wrong_pins(check, demo_copy):
    project = demo_copy / "project.yml"
    _edit(project, "branch: swiftpm-1.5.0", "branch: main")
    _edit(project, "OTHER_LDFLAGS: -all_load", "OTHER_LDFLAGS: -ObjC")
    _edit(project, "product: kernels_quantized", "product: kernels_portable")
    _edit(project, 'iOS: "17.0"', 'iOS: "16.0"')
    text = "\n".join(check.run(demo_copy).errors)
    for needle in ("swiftpm-1.5.0", "-all_load", "kernels_quantized", "deploymentTarget.iOS"):
        assert needle in text, (needle, text)


# The vector files and keys the Swift tests (ios_demo/QuantSRCore/Tests) decode.
SWIFT_VECTOR_KEYS = {
    "pixels.json": {"schema", "argb_to_float", "float_to_uint8", "uint8_to_argb", "exif_orientation"},
    "tiling.json": {"schema", "fields", "cases", "invalid"},
    "stitch.json": {"schema", "min_side", "height", "width", "argb", "cases"},
    "models.json": {"schema", "models"},
    "models_expected.json": {"schema", "models", "defaults_when_missing", "invalid"},
    "latency.json": {"schema", "cases", "bench_row"},
}


def test_swift_tests_find_the_shared_vectors():
    tests = IOS / "QuantSRCore" / "Tests" / "QuantSRCoreTests"
    used = set()
    for f in tests.glob("*.swift"):
        used.update(re.findall(r'(?:load\(\w+\.self, |data\()"([a-z_]+\.json)"', f.read_text()))
    assert used == set(SWIFT_VECTOR_KEYS), used
    for name, keys in SWIFT_VECTOR_KEYS.items():
        path = VECTORS / name
        assert path.is_file(), f"{path} missing: run python tests/make_vectors.py"
        data = json.loads(path.read_text())
        assert data["schema"] == 1, f"{name}: the Swift tests read schema 1"
        assert keys <= set(data), f"{name} lacks {keys - set(data)}"
    stitch = json.loads((VECTORS / "stitch.json").read_text())
    known = {"nearest", "ramp", "mirror"}
    assert {c["model"] for c in stitch["cases"]} <= known, f"StitchTests.swift knows {sorted(known)}"


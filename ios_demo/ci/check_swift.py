#!/usr/bin/env python3
"""Static checks of the iOS demo that run on Linux (no Swift compiler or Xcode here):

1. Swift syntax: every ``.swift`` file under ios_demo/ parses with tree-sitter-swift without ERROR or MISSING
   nodes (each one printed as ``file:line:column``).
2. ``project.yml`` (XcodeGen): the pinned values (iOS 17, the executorch package at branch ``swiftpm-1.5.0`` with
   the products executorch, backend_xnnpack, kernels_optimized, kernels_quantized, ``-all_load``, the local
   QuantSRCore package, the git-ignored Models folder as a resource folder).
3. Framework API surface: only ``Engines/ExecuTorchEngine.swift`` imports ExecuTorch and only
   ``Engines/CoreMLEngine.swift`` imports CoreML; QuantSRCore imports nothing but Foundation (and XCTest in
   tests); in the two engine files every framework type, initializer signature and member name must be in the
   allowlists below, which are the API listed in shared/docs/APPS.md (plus the MLMultiArray buffer accessors and
   ``MLModel.prediction(from:)``, standard Core ML API that APPS.md implies but does not spell out).
   Member names declared by the project itself and a few standard-library names are accepted too, so a framework
   member that shares a name with one of ours is not caught; the check is a tripwire, not a compiler.

Usage: ``python ios_demo/ci/check_swift.py [--root ios_demo]``; exit status 0 when everything passes.
Needs ``pip install tree-sitter tree-sitter-swift pyyaml``.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

INSTALL_HINT = "pip install tree-sitter tree-sitter-swift pyyaml"

try:
    import tree_sitter
    import tree_sitter_swift
    import yaml
except ImportError as exc:  # pragma: no cover - exercised by tests/test_ios.py's message check
    raise SystemExit(f"check_swift.py needs {exc.name}: {INSTALL_HINT}") from None

ROOT = Path(__file__).resolve().parent.parent  # ios_demo/

# ------------------------------------------------------------------------------------------------ pinned values
IOS_TARGET = "17.0"
EXECUTORCH_URL = "https://github.com/pytorch/executorch"
EXECUTORCH_BRANCH = "swiftpm-1.5.0"
EXECUTORCH_PRODUCTS = {"executorch", "backend_xnnpack", "kernels_optimized", "kernels_quantized"}
APP_TARGET = "QuantSRDemo"
SWIFT_TOOLS_VERSION = "5.9"

# --------------------------------------------------------------------------------------------- API allowlists
# Framework -> the only files allowed to import it (relative to ios_demo/).
FRAMEWORK_FILES = {
    "ExecuTorch": {"QuantSRDemo/Sources/Engines/ExecuTorchEngine.swift"},
    "CoreML": {"QuantSRDemo/Sources/Engines/CoreMLEngine.swift"},
}
# Framework types the engine files may name, with the initializer label signatures allowed ("_" = unlabeled).
FRAMEWORK_INITS: dict[str, dict[str, set[tuple[str, ...]]]] = {
    "ExecuTorch": {
        "Module": {("filePath",), ("filePath", "loadMode")},
        "Tensor": {("_", "shape"), ("_",)},
        "Value": set(),  # may be named (e.g. [Value]), not constructed
    },
    "CoreML": {
        "MLModel": {("contentsOf", "configuration")},
        "MLModelConfiguration": {()},
        "MLMultiArray": {("shape", "dataType")},
        "MLDictionaryFeatureProvider": {("dictionary",)},
        "MLFeatureValue": {("multiArray",)},
        "MLComputeUnits": set(),
        "MLMultiArrayDataType": set(),
    },
}
# Members (after a dot, including implicit members such as `.mmap`) the engine files may use on framework values.
FRAMEWORK_MEMBERS = {
    "ExecuTorch": {"load", "forward", "shape", "scalars", "withUnsafeBytes", "mmap", "file"},
    "CoreML": {
        # APPS.md
        "compileModel", "computeUnits", "cpuOnly", "cpuAndGPU", "cpuAndNeuralEngine", "all", "featureValue",
        "multiArrayValue", "strides", "shape", "float32", "dataType",
        # standard Core ML API used with the above (not spelled out in APPS.md)
        "prediction", "withUnsafeMutableBufferPointer", "withUnsafeBufferPointer",
    },
}
# Standard library / Foundation names the engine files may use besides the project's own declarations.
STDLIB_NAMES = {
    "map", "intValue", "path", "pathExtension", "lastPathComponent", "deletingPathExtension", "default",
    "appendingPathComponent", "url", "fileExists", "createDirectory", "removeItem", "moveItem", "cachesDirectory",
    "userDomainMask", "isLetter", "isNumber", "prefix", "count", "init", "self",
}
STDLIB_TYPES = {
    "String", "Int", "Float", "Double", "Bool", "URL", "Data", "FileManager", "NSNumber", "Error", "Array",
    "Character", "Substring",
}
PURE_IMPORTS = {"Foundation", "XCTest", "QuantSRCore", "PackageDescription"}


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)
    checked_files: int = 0

    def fail(self, message: str) -> None:
        self.errors.append(message)


_PARSER = None


def parser() -> tree_sitter.Parser:
    global _PARSER
    if _PARSER is None:
        _PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_swift.language()))
    return _PARSER


def swift_files(root: Path) -> list[Path]:
    skip = {".build", "DerivedData", ".swiftpm"}
    return sorted(p for p in root.rglob("*.swift") if not skip.intersection(p.relative_to(root).parts))


def walk(node):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children))


def text(node, source: bytes) -> str:
    return source[node.start_byte:node.end_byte].decode("utf-8", "replace")


# ------------------------------------------------------------------------------------------------------ syntax
def syntax_errors(path: Path, source: bytes | None = None, label: str | None = None) -> list[str]:
    """``file:line:col: ERROR|MISSING ...`` for every error node of ``path``."""
    source = path.read_bytes() if source is None else source
    tree = parser().parse(source)
    label = label or str(path)
    out = []
    for n in walk(tree.root_node):
        if n.is_missing:
            out.append(f"{label}:{n.start_point[0] + 1}:{n.start_point[1] + 1}: MISSING {n.type}")
        elif n.type == "ERROR":
            snippet = text(n, source).strip().splitlines()[0][:60] if text(n, source).strip() else ""
            out.append(f"{label}:{n.start_point[0] + 1}:{n.start_point[1] + 1}: ERROR near {snippet!r}")
    return out


# ------------------------------------------------------------------------------------------------- project.yml
def _products(deps: list, package: str) -> set[str]:
    found: set[str] = set()
    for d in deps or []:
        if isinstance(d, dict) and d.get("package") == package:
            if "product" in d:
                found.add(str(d["product"]))
            found.update(str(p) for p in d.get("products") or [])
    return found


def _flags(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return str(value).split()


def check_project(root: Path, report: Report) -> None:
    path = root / "project.yml"
    if not path.is_file():
        report.fail(f"{path}: missing")
        return
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        report.fail(f"{path}: not valid YAML: {exc}")
        return
    where = str(path)

    def need(cond: bool, message: str) -> None:
        if not cond:
            report.fail(f"{where}: {message}")

    ios = str((spec.get("options") or {}).get("deploymentTarget", {}).get("iOS", ""))
    need(ios == IOS_TARGET, f"options.deploymentTarget.iOS must be {IOS_TARGET!r}, got {ios!r}")
    target = (spec.get("targets") or {}).get(APP_TARGET)
    need(isinstance(target, dict), f"no target {APP_TARGET}")
    target = target or {}
    need(target.get("type") == "application", f"{APP_TARGET}.type must be application")
    need(target.get("platform") == "iOS", f"{APP_TARGET}.platform must be iOS")
    if "deploymentTarget" in target:
        need(str(target["deploymentTarget"]) == IOS_TARGET, f"{APP_TARGET}.deploymentTarget must be {IOS_TARGET!r}")
    packages = spec.get("packages") or {}
    et = packages.get("executorch") or {}
    need(et.get("url") == EXECUTORCH_URL, f"packages.executorch.url must be {EXECUTORCH_URL}")
    need(et.get("branch") == EXECUTORCH_BRANCH, f"packages.executorch.branch must be {EXECUTORCH_BRANCH}")
    need(not {"version", "from", "exactVersion", "revision", "minorVersion"} & set(et),
         "packages.executorch must pin only the branch")
    products = _products(target.get("dependencies"), "executorch")
    need(EXECUTORCH_PRODUCTS <= products,
         f"{APP_TARGET} must link executorch products {sorted(EXECUTORCH_PRODUCTS)}, has {sorted(products)}")
    settings = (target.get("settings") or {}).get("base") or {}
    need("-all_load" in _flags(settings.get("OTHER_LDFLAGS")), f"{APP_TARGET} OTHER_LDFLAGS must contain -all_load")
    core = packages.get("QuantSRCore") or {}
    need(bool(core.get("path")), "packages.QuantSRCore must be a local package (path:)")
    if core.get("path"):
        manifest = root / core["path"] / "Package.swift"
        need(manifest.is_file(), f"{manifest} missing")
        if manifest.is_file():
            first = manifest.read_text().splitlines()[0]
            need(first.strip() == f"// swift-tools-version: {SWIFT_TOOLS_VERSION}",
                 f"{manifest} must start with '// swift-tools-version: {SWIFT_TOOLS_VERSION}'")
    need(bool(_products(target.get("dependencies"), "QuantSRCore")), f"{APP_TARGET} must depend on QuantSRCore")
    sources = target.get("sources") or []
    models = [s for s in sources if isinstance(s, dict) and str(s.get("path", "")).endswith("Models")]
    need(bool(models) and models[0].get("type") == "folder" and models[0].get("buildPhase") == "resources",
         "the Models folder must be a `type: folder` resource source")
    info = ((target.get("info") or {}).get("properties")) or {}
    need("NSPhotoLibraryAddUsageDescription" in info, "Info.plist needs NSPhotoLibraryAddUsageDescription")
    ignore = root / ".gitignore"
    need(ignore.is_file() and "QuantSRDemo/Models/" in ignore.read_text(),
         "ios_demo/.gitignore must ignore QuantSRDemo/Models/")


# ------------------------------------------------------------------------------------------------ API surface
def imports(tree, source: bytes) -> list[tuple[str, int]]:
    out = []
    for n in tree.root_node.children:
        if n.type == "import_declaration":
            name = text(n, source).split()[-1].split(".")[0]
            out.append((name, n.start_point[0] + 1))
    return out


def declared_names(trees: list[tuple[Path, bytes, object]]) -> tuple[set[str], set[str]]:
    """(member-like names, type names) declared anywhere in the project's Swift files."""
    names: set[str] = set()
    types: set[str] = set()
    for _, source, tree in trees:
        for n in walk(tree.root_node):
            if n.type in ("class_declaration", "protocol_declaration", "typealias_declaration"):
                name = n.child_by_field_name("name")
                if name is not None:
                    types.add(text(name, source))
            elif n.type in ("function_declaration", "protocol_function_declaration"):
                name = n.child_by_field_name("name")
                if name is not None:
                    names.add(text(name, source))
            elif n.type == "pattern":
                ident = n.child_by_field_name("bound_identifier")
                if ident is not None:
                    names.add(text(ident, source))
            elif n.type == "enum_entry" or n.type == "parameter":
                for c in n.children:
                    if c.type == "simple_identifier":
                        names.add(text(c, source))
    return names, types


def _labels(args_node, source: bytes) -> tuple[str, ...]:
    labels = []
    if args_node is None:
        return ()
    for arg in args_node.children:
        if arg.type != "value_argument":
            continue
        label = next((c for c in arg.children if c.type == "value_argument_label"), None)
        labels.append(text(label, source) if label is not None else "_")
    return tuple(labels)


def _find(node, kind: str):
    for c in node.children:
        if c.type == kind:
            return c
    return None


def check_api_file(rel: str, source: bytes, tree, frameworks: set[str], project_names: set[str],
                   project_types: set[str], report: Report) -> None:
    inits = {t: sigs for f in frameworks for t, sigs in FRAMEWORK_INITS[f].items()}
    members = set().union(*(FRAMEWORK_MEMBERS[f] for f in frameworks))
    allowed_members = members | project_names | STDLIB_NAMES
    known_types = set(inits) | project_types | STDLIB_TYPES
    for n in walk(tree.root_node):
        line = n.start_point[0] + 1
        if n.type == "navigation_suffix":
            ident = n.child_by_field_name("suffix")
            if ident is not None and ident.type == "simple_identifier":
                name = text(ident, source)
                if name not in allowed_members:
                    report.fail(f"{rel}:{line}: .{name} is not in the APPS.md API allowlist")
        elif n.type == "prefix_expression" and text(n, source).startswith("."):
            ident = n.child_by_field_name("target")
            if ident is not None and ident.type == "simple_identifier":
                name = text(ident, source)
                if name not in allowed_members:
                    report.fail(f"{rel}:{line}: .{name} is not in the APPS.md API allowlist")
        elif n.type == "type_identifier":
            name = text(n, source)
            if (name.startswith("ML") or name not in known_types) and name not in inits:
                report.fail(f"{rel}:{line}: type {name} is not in the APPS.md API allowlist")
        elif n.type in ("call_expression", "constructor_expression"):
            callee = n.children[0] if n.children else None
            if callee is None:
                continue
            if n.type == "constructor_expression":
                type_node = n.child_by_field_name("constructed_type") or callee
                ident = _find(type_node, "type_identifier") if type_node.type != "type_identifier" else type_node
                name = text(ident, source) if ident is not None else text(type_node, source)
                suffix = _find(n, "constructor_suffix")
            else:
                name = text(callee, source) if callee.type == "simple_identifier" else None
                suffix = _find(n, "call_suffix")
            if name is None or name not in inits:
                if name and name.startswith("ML"):
                    report.fail(f"{rel}:{line}: {name} is not in the APPS.md API allowlist")
                continue
            labels = _labels(_find(suffix, "value_arguments") if suffix is not None else None, source)
            if labels not in inits[name]:
                shown = "(" + "".join(f"{label}:" for label in labels) + ")"
                report.fail(f"{rel}:{line}: {name}{shown} is not an allowed initializer "
                            f"(allowed: {sorted(inits[name])})")


def check_api(root: Path, parsed: list[tuple[Path, bytes, object]], report: Report) -> None:
    project_names, project_types = declared_names(parsed)
    for path, source, tree in parsed:
        rel = path.relative_to(root).as_posix()
        used = set()
        for name, line in imports(tree, source):
            used.add(name)
            if name in FRAMEWORK_FILES and rel not in FRAMEWORK_FILES[name]:
                report.fail(f"{rel}:{line}: only {sorted(FRAMEWORK_FILES[name])} may import {name} "
                            "(keep framework code small and isolated)")
            if rel.startswith("QuantSRCore/") and name not in PURE_IMPORTS:
                report.fail(f"{rel}:{line}: QuantSRCore is pure logic: import {name} is not allowed")
        # API check in the engine files only (a stray import elsewhere is reported once, above)
        frameworks = {f for f in used & set(FRAMEWORK_FILES) if rel in FRAMEWORK_FILES[f]}
        if frameworks:
            check_api_file(rel, source, tree, frameworks, project_names, project_types, report)
    for framework, files in FRAMEWORK_FILES.items():
        for f in files:
            if not (root / f).is_file():
                report.fail(f"{f}: missing (the {framework} engine)")


def run(root: Path) -> Report:
    report = Report()
    parsed = []
    for path in swift_files(root):
        source = path.read_bytes()
        rel = path.relative_to(root).as_posix()
        report.errors.extend(syntax_errors(path, source, rel))
        parsed.append((path, source, parser().parse(source)))
        report.checked_files += 1
    if not parsed:
        report.fail(f"{root}: no .swift files")
    check_project(root, report)
    check_api(root, parsed, report)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=ROOT, help="the ios_demo folder (default: this script's parent)")
    args = ap.parse_args(argv)
    report = run(args.root.resolve())
    for e in report.errors:
        print(e)
    status = "FAILED" if report.errors else "OK"
    print(f"check_swift: {report.checked_files} Swift files, {len(report.errors)} problems: {status}")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())

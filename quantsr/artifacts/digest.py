"""Digest and sizes of an exported artifact (a ``.pte`` file or an ``.mlpackage`` directory)."""
from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

__all__ = ["file_digest", "gzip_bytes", "package_bytes"]


def file_digest(path: Path) -> str:
    """sha256 of a file, or of an ``.mlpackage`` directory (its files' relative paths and contents, sorted)."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if f != path:
            h.update(str(f.relative_to(path)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def gzip_bytes(path: Path) -> int:
    """Bytes after ``gzip -9`` (what an app package or a download ships), summed over a package's files."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(len(gzip.compress(f.read_bytes(), 9)) for f in files)


def package_bytes(path: str | Path) -> int:
    """Total size of an ``.mlpackage`` directory (or of a single file)."""
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())

"""Checking that a file is a whole ExecuTorch program before the runtime sees it: the runtime aborts the process
(SIGABRT) on some foreign files and answers others with a bare error code, so the header is read here first."""
from __future__ import annotations

import os
from pathlib import Path

from quantsr.artifacts.cards import ArtifactError

__all__ = ["check_pte_file"]

# A .pte is a flatbuffer: a 4-byte root offset, then the file identifier "ET" + two version digits; quantsr's
# exports then carry ExecuTorch's extended header ("eh00", its length, the program size, the segment offset and
# the segment size, little-endian), from which the expected file size follows.
_IDENTIFIER = slice(4, 6)
_EXTENDED_MAGIC = b"eh00"
_HEAD_BYTES = 64


def check_pte_file(path: str | os.PathLike) -> int:
    """The file's size in bytes if ``path`` looks like a complete ExecuTorch program; a one-line
    :class:`ArtifactError` saying what is wrong (missing, empty, not ExecuTorch, truncated) otherwise."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: no such file")
    if path.is_dir():
        raise ArtifactError(f"{path} is a folder, not a .pte file")
    size = path.stat().st_size
    if size == 0:
        raise ArtifactError(f"{path}: empty file (0 bytes); export it again with `quantsr export`")
    with open(path, "rb") as fh:
        head = fh.read(_HEAD_BYTES)
    ident = head[_IDENTIFIER]
    if len(head) < 8 or ident != b"ET" or not head[6:8].isdigit():
        raise ArtifactError(f"{path}: not an ExecuTorch program (no 'ET' file identifier); pass a .pte written by "
                            "`quantsr export`")
    if head[8:12] == _EXTENDED_MAGIC and len(head) >= 32:
        length = int.from_bytes(head[12:16], "little")
        program_size = int.from_bytes(head[16:24], "little")
        segment_base = int.from_bytes(head[24:32], "little")
        segment_size = int.from_bytes(head[32:40], "little") if length >= 32 and len(head) >= 40 else 0
        expected = max(program_size, segment_base + segment_size if segment_base else 0)
        if size < expected:
            raise ArtifactError(f"{path}: truncated ({size} bytes, its header says {expected}); copy or export "
                                "it again")
    return size

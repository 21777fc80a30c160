"""Write-then-rename, so an interrupted write never leaves a half-written file under the final name, and the
checks that an output can be written at all, made before any long work starts."""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from quantsr.artifacts.cards import ArtifactError

__all__ = ["atomic_write", "ensure_writable", "remove_stale_temps", "write_text_atomic"]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Yield a file handle on a temporary file beside ``path``; fsync and rename it over ``path`` on success.

    The temporary file is named ``.NAME.PID.RANDOM.tmp``: a process killed mid-write (SIGKILL runs no cleanup)
    leaves it behind, and the next write of ``path`` removes it once that PID is gone."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; give the usual permissions of a new file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of earlier writes of ``path`` whose writing process no longer runs (a live
    writer's file is left alone, so concurrent writers stay safe). Returns what was removed. A folder is listed
    once per process, so a batch writing thousands of files into one folder does not list it thousands of times."""
    path = Path(path)
    removed = []
    for entry in _temps_in(path.parent).pop(path.name, []):
        match = _TEMP_NAME.match(entry.name)
        if match and not _process_alive(int(match.group(2))):
            with contextlib.suppress(OSError):
                entry.unlink()
                removed.append(entry)
    return removed


_TEMP_NAME = re.compile(r"^\.(.+)\.(\d+)\.[^.]+\.tmp$")  # .NAME.PID.RANDOM.tmp, as atomic_write names them
_listed: dict[str, dict[str, list[Path]]] = {}


def _temps_in(folder: Path) -> dict[str, list[Path]]:
    """The temp-file candidates in ``folder`` by target name, listed on first use in this process."""
    key = str(folder.resolve())
    if key not in _listed:
        found: dict[str, list[Path]] = {}
        with contextlib.suppress(OSError):
            for entry in folder.iterdir():
                match = _TEMP_NAME.match(entry.name)
                if match:
                    found.setdefault(match.group(1), []).append(entry)
        _listed[key] = found
    return _listed[key]


def ensure_writable(path: str | os.PathLike, *, folder: bool = False) -> None:
    """Fail now, with one line, if ``path`` (a file, or with ``folder`` a folder) cannot be written: a path that
    is a folder (or a file where a folder is meant), a parent that is a file, a folder without write access or on
    a read-only file system. Missing parents are fine (writes create them); nothing is left behind."""
    path = Path(path)
    if not folder and path.is_dir():
        raise ArtifactError(f"{path} is a folder; give a file name inside it")
    if folder and path.exists() and not path.is_dir():
        raise ArtifactError(f"{path} is a file, not a folder; choose another output folder")
    ancestor = path if folder else path.parent
    ancestor = ancestor if str(ancestor) else Path(".")
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ArtifactError(f"cannot write {path}: {ancestor} is a file, not a folder")
    try:  # os.access says yes to root on a read-only folder and knows nothing of read-only mounts: try it
        fd, probe = tempfile.mkstemp(prefix=".quantsr-write-check.", dir=ancestor)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        where = f"{ancestor} is" if ancestor != path else "it is"
        raise ArtifactError(f"cannot write {path}: {where} not writable ({exc.strerror}); choose another output "
                            "location") from None


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` via a temporary file and rename."""
    with atomic_write(path, "w") as fh:
        fh.write(text)
    return Path(path)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill(pid, 0) would signal the process there: keep every temp file (safe side)
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's live process, or not a PID at all
        return True
    return True


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

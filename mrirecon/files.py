"""Writing files safely: atomic replacement, stale temporaries, outputs that never clobber inputs.

Every file mrirecon writes goes through :func:`atomic_path`: the content is written to
``.<name>.<pid>.tmp`` beside the target and renamed into place only when complete, so a crash,
Ctrl-C or a full disk never leaves a truncated file under the final name. A temporary left by
a killed process (its pid no longer runs) is removed the next time the same output is written.

:func:`check_output` is the one check a command makes on an output path before it computes
anything: the suffix, a writable folder, and that it is not one of the inputs (a reconstruction
written over its own raw k-space would destroy the scan).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from mrirecon.errors import MrireconError, require

__all__ = [
    "atomic_path",
    "atomic_save_npy",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_output",
    "read_npy",
    "remove_stale_temporaries",
    "same_file",
]


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete ``.<name>.<pid>.tmp`` files of ``path`` whose writer no longer runs; returns them."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 : -4]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); silently skipped where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it.

    Parent folders are created. Use as ``with atomic_path(out) as tmp: write(tmp)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = _temporary(path)
    try:
        yield tmp
        require(tmp.exists(), f"{path}: nothing was written")
        # ordinary permissions (0666 & ~umask): some writers (safetensors) create files 0600,
        # which would make shared results or bundled package data unreadable to others
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_npy(path: str | os.PathLike, array) -> Path:
    """``numpy.save`` to ``path`` atomically (no pickles: plain arrays only)."""
    import numpy as np

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(array), allow_pickle=False)
    return Path(path)


def read_npy(path: str | os.PathLike, what: str | None = None):
    """One plain ``.npy`` array (never a pickle), or a one-line error naming ``what`` (default: the path)."""
    import numpy as np

    name = what or str(path)
    require(Path(path).is_file(), f"{name}: no such file")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:  # pickles, text, truncated or empty files
        raise MrireconError(f"{name} is not a NumPy .npy array ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    require(isinstance(data, np.ndarray), f"{name} must hold one array, got {type(data).__name__}")
    return data


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name the same file (through links too); False if ``a`` does not exist."""
    a, b = Path(a), Path(b)
    if not a.exists() or not b.exists():
        return a.resolve() == b.resolve()
    return os.path.samefile(a, b)


def check_output(
    path: str | os.PathLike,
    option: str,
    suffixes: tuple[str, ...] | None = None,
    inputs: Iterable[str | os.PathLike | None] = (),
) -> Path:
    """Check an output path before any work: suffix, not a folder, not an input, writable folder.

    Parameters
    ----------
    path : path
        The output file.
    option : str
        How the user named it (``--out``), for the message.
    suffixes : tuple of str, optional
        Accepted suffixes (``(".h5",)``).
    inputs : paths
        Files the command reads; the output must not be any of them.

    Returns
    -------
    Path
    """
    path = Path(path)
    if suffixes is not None:
        require(
            path.name.lower().endswith(tuple(s.lower() for s in suffixes)),
            f"{option} must end with {' or '.join(suffixes)}, got '{path}'",
        )
    too_long = [p for p in path.parts if len(os.fsencode(p)) > 255]
    require(not too_long, f"{option} '{path}': the name '{too_long[0][:40]}...' is longer than file systems allow (255 bytes)"
            if too_long else "")  # fmt: skip
    require(not path.is_dir(), f"{option} '{path}' is a directory; give a file name")
    for src in inputs:
        if src is not None and Path(src).exists():
            require(
                not same_file(path, src),
                f"{option} '{path}' is the input file '{src}'; writing there would destroy it: choose another name",
            )
    _check_folder_writable(path.parent, option, path)
    return path


def _check_folder_writable(folder: Path, option: str, path: Path) -> None:
    """The nearest existing ancestor must be a writable folder (the rest is created later)."""
    probe = folder if str(folder) else Path(".")
    while not probe.exists():
        probe = probe.parent
    require(probe.is_dir(), f"{option} '{path}': '{probe}' is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as e:
        raise MrireconError(f"{option} '{path}': cannot write in '{probe}' ({e.strerror or type(e).__name__})") from None

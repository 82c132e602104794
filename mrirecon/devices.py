"""Devices and CPU threads: one place that turns ``--device`` into a torch device.

``"auto"`` (the default of every command and of the Python API) is the first CUDA GPU when
one is visible, else the CPU. Under ``torchrun`` a bare ``"cuda"`` becomes
``cuda:<LOCAL_RANK>`` so each rank drives its own GPU.

CPU threads: torch starts one intra-op thread per core, and on a machine shared with other
work that oversubscribes the cores (a 2-core machine under load ran the demo 7x slower than
with one thread: OpenMP threads spin waiting for cores that are busy). :func:`configure_threads`
sizes the pool to the cores that are free when the command starts (available cores minus the
1-minute load average, 1 to 8), honours ``OMP_NUM_THREADS`` / an explicit ``--threads``, and
is called once at start-up by every command.
"""

from __future__ import annotations

import os

import torch

from mrirecon.errors import MrireconError, require

__all__ = ["DEVICE_HELP", "available_cores", "configure_threads", "resolve_device"]

DEVICE_HELP = "auto (CUDA when available, else CPU), cpu, cuda or cuda:N."


def resolve_device(device: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """A concrete device for ``device``, failing early (one line) if it cannot be used.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device, optional
        None means ``"auto"``.
    local_rank : int
        GPU index that a bare ``"cuda"`` maps to (torchrun's ``LOCAL_RANK``).
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
        return torch.device("cpu")
    require(isinstance(device, (str, torch.device)), f"device must be {DEVICE_HELP.rstrip('.')}; got {device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise MrireconError(f"device must be {DEVICE_HELP.rstrip('.')}; got {device!r}") from None
    if dev.type == "cuda":
        require(
            torch.cuda.is_available(),
            f"device {str(device)!r} was requested but no CUDA GPU is available "
            "(torch.cuda.is_available() is False); use --device cpu or auto",
        )
        index = local_rank if dev.index is None else dev.index
        count = torch.cuda.device_count()
        require(index < count, f"device {str(device)!r}: GPU index {index} does not exist ({count} visible)")
        return torch.device("cuda", index)
    require(dev.type == "cpu", f"device must be {DEVICE_HELP.rstrip('.')}; got {device!r}")
    return dev


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, e.g. a container's CPU set)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op CPU threads and return the number used.

    ``threads`` wins; else ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` when set (torch already
    honours them); else the free cores: available cores minus the rounded 1-minute load
    average, at least 1 and at most 8 (beyond that the small FFTs and convolutions here gain
    little and a shared machine loses more).
    """
    if threads is not None:
        require(isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1,
                f"threads must be an integer >= 1, got {threads!r}")  # fmt: skip
        n = threads
    elif os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS"):
        return torch.get_num_threads()
    else:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = 0.0
        n = max(1, min(8, available_cores() - round(load)))
    torch.set_num_threads(n)
    return n

"""torch.distributed helpers for work that runs under ``torchrun`` or as one plain process.

The same code path serves both cases: without torchrun's environment variables every
helper degrades to the single-process answer (rank 0 of 1, barriers are no-ops, gathers
return ``[obj]``), so callers never branch on "am I distributed?".

Typical use (what :mod:`mrirecon.evaluation` does)::

    with distributed_session(device="cuda") as ctx:      # reads RANK/WORLD_SIZE/LOCAL_RANK
        mine = shard(items, ctx.rank, ctx.world_size, key=lambda it: it.file)
        ...                                              # each rank writes its own part file
        barrier()
        if ctx.is_main:
            ...                                          # rank 0 merges the parts

``torchrun --nproc-per-node G [--nnodes N --node-rank i --rdzv-endpoint host:port] -m
mrirecon.cli evaluate ...`` sets the variables; the backend is NCCL when each rank drives a
CUDA device and Gloo otherwise (CPU ranks, or several CPU processes for testing).
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from mrirecon.devices import resolve_device
from mrirecon.errors import MrireconError, require

__all__ = [
    "DistContext",
    "barrier",
    "context_from_env",
    "distributed_session",
    "gather_objects",
    "init_distributed",
    "resolve_device",
    "shard",
    "shutdown_distributed",
]

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in a (possibly one-process) job.

    Attributes
    ----------
    rank, world_size : int
        Global rank in ``[0, world_size)`` and the number of processes.
    local_rank : int
        Rank on this node (selects the GPU: ``cuda:<local_rank>``).
    backend : str or None
        ``"nccl"``/``"gloo"`` when a process group is active, None for a single process.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """True on rank 0, the rank that merges results and prints summaries."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise MrireconError(f"environment variable {name} must be an integer, got {raw!r}") from None


def context_from_env() -> DistContext:
    """Read torchrun's ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (defaults: one process).

    When a process group is already initialised (e.g. by the caller), its rank and size win.
    """
    if dist.is_available() and dist.is_initialized():
        return DistContext(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            local_rank=_env_int("LOCAL_RANK", 0),
            backend=str(dist.get_backend()),
        )
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    require(world >= 1, f"WORLD_SIZE must be >= 1, got {world}")
    require(0 <= rank < world, f"RANK must be in [0, WORLD_SIZE={world}), got {rank}")
    return DistContext(rank=rank, world_size=world, local_rank=_env_int("LOCAL_RANK", 0))


def init_distributed(device: str = "auto", timeout_s: float = 1800.0) -> DistContext:
    """Join the torchrun process group if the environment describes one; return the context.

    A single process (``WORLD_SIZE`` unset or 1) initialises nothing. Under torchrun the
    backend is NCCL for CUDA devices, Gloo otherwise; ``MASTER_ADDR``/``MASTER_PORT`` come from
    torchrun (``init_method="env://"``). Idempotent: an existing group is reused.
    """
    ctx = context_from_env()
    if ctx.world_size == 1 or (dist.is_available() and dist.is_initialized()):
        return ctx
    require(dist.is_available(), "torch.distributed is not available in this torch build")
    dev = resolve_device(device, ctx.local_rank)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(dev)
    dist.init_process_group(
        backend=backend,
        init_method="env://",
        rank=ctx.rank,
        world_size=ctx.world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
    )
    return DistContext(ctx.rank, ctx.world_size, ctx.local_rank, backend)


def shutdown_distributed() -> None:
    """Destroy the process group if one is active (safe to call in any state)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def distributed_session(device: str = "auto") -> Iterator[DistContext]:
    """Context manager: :func:`init_distributed` on entry; on exit destroy what it created."""
    owned = not (dist.is_available() and dist.is_initialized())
    ctx = init_distributed(device)
    try:
        yield ctx
    finally:
        if owned:
            shutdown_distributed()


def barrier() -> None:
    """Wait for every rank (no-op for a single process)."""
    if dist.is_available() and dist.is_initialized():
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def gather_objects(obj: Any) -> list[Any]:
    """All-gather one picklable object per rank; returns the list indexed by rank.

    For a single process this is ``[obj]``.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def shard(
    items: Sequence[T],
    rank: int,
    world_size: int,
    key: Callable[[T], Hashable] | None = None,
) -> list[T]:
    """The items that ``rank`` of ``world_size`` processes works on (order preserved).

    Items are dealt round-robin, so ranks get counts that differ by at most one. With
    ``key``, items sharing a key form one group dealt as a whole (groups in order of first
    appearance), e.g. every setting of one volume on one rank so that it loads the volume
    once, like fastMRI's ``VolumeSampler``. The union over ranks is exactly ``items`` and
    the shards are disjoint, whatever ``world_size`` is.

    Parameters
    ----------
    items : sequence
        The whole work list, identical on every rank.
    rank, world_size : int
        ``0 <= rank < world_size``.
    key : callable, optional
        Group key of an item.
    """
    require(world_size >= 1, f"world_size must be >= 1, got {world_size}")
    require(0 <= rank < world_size, f"rank must be in [0, {world_size}), got {rank}")
    if key is None:
        return [it for i, it in enumerate(items) if i % world_size == rank]
    group_index: dict[Hashable, int] = {}
    for it in items:
        group_index.setdefault(key(it), len(group_index))
    return [it for it in items if group_index[key(it)] % world_size == rank]

"""Training and cross-validation over several processes, under PyTorch's own launcher.

``torchrun`` (``python -m torch.distributed.run``) starts one process per rank and tells each
where it stands through its environment: ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``. :func:`launched` reads them; with ``WORLD_SIZE`` above 1
it joins the process group (gloo on the CPU, nccl where training runs on CUDA) and yields a
:class:`DistContext`; without them (or with one process) it yields the single-process context,
touches nothing, and the commands run exactly as they always did.

What is shared, and how (``docs/models.md``, "Training on several processes"):

- ``neuroclip train``: every rank loads the same windows, draws the same batches and the same
  random masks from the same generators, and takes its contiguous share of every batch
  (:meth:`DistContext.shard`); the network is wrapped in DistributedDataParallel. The losses
  are written so that the averaged gradient is the one-process gradient of the whole batch:
  batch-separable parts are summed per rank over the *global* normaliser, the contrastive
  loss sees every rank's embeddings (:meth:`DistContext.gather_rows`, autograd-aware), and
  while training, batch normalisation uses the statistics of the whole batch and dropout the
  rows of one whole-batch mask (:func:`shard_layers`). What is left differs in rounding only.
- ``neuroclip evaluate --cv``: every (fold, model) is one task, trained on one rank from its
  own seed as a single process would; rank 0 gathers the results and writes the report.

Only rank 0 writes, prints and logs above ERROR. An error on one rank reaches the others
(:meth:`DistContext.run_on_main`, :meth:`DistContext.agree`), and every collective has the
process group's timeout, so no rank waits forever.

This module imports torch only inside functions: reading the environment needs none.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import os
import sys
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from contract.errors import NeuroclipError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 1800.0
"""Seconds a rank waits for the others in one collective before it gives up.

Cross-validation gathers its results once, after each rank's share of the folds: a rank
that finishes early waits there for the slowest, so this must exceed the longest imbalance
(half an hour covers a fold of the full cohort on a laptop)."""
LAUNCH_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
"""The environment torchrun sets for each process it starts."""
TORCHRUN = "torchrun --standalone --nproc-per-node N -m neuroclip ..."


class DistributedError(NeuroclipError):
    """A distributed run cannot start, or another rank failed: one line, with the fix."""

    def __init__(self, message: str, *, fix: str | None = None, exit_code: int = 2):
        super().__init__(message, fix=fix)
        self.exit_code = exit_code
        self.args = (message if fix is None else f"{message} Fix: {fix}",)  # one line


@dataclass(frozen=True)
class Launch:
    """Where this process stands in a launch of several."""

    rank: int
    world_size: int
    local_rank: int
    master: str


def launch_from_env(environ: Mapping[str, str] | None = None) -> Launch | None:
    """The launch torchrun describes in ``environ``; ``None`` for a single process.

    No ``WORLD_SIZE``, or ``WORLD_SIZE=1``, is a single process (the other variables are then
    ignored).

    Raises
    ------
    DistributedError
        ``WORLD_SIZE`` is above 1 but the other variables are missing or inconsistent.
    """
    env = os.environ if environ is None else environ
    if env.get("WORLD_SIZE") is None:
        return None
    values: dict[str, int] = {}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        raw = env.get(key)
        try:
            values[key] = int(raw) if raw is not None else -1
        except ValueError:
            values[key] = -1
        if values[key] < 0 and (key == "WORLD_SIZE" or values["WORLD_SIZE"] > 1):
            raise DistributedError(
                f"inconsistent launch environment: {key}={raw!r}, expected a whole number "
                f"{'>= 1' if key == 'WORLD_SIZE' else '>= 0'} (torchrun sets "
                f"{', '.join(LAUNCH_VARIABLES)}).",
                fix=f"start the command with {TORCHRUN}, or unset WORLD_SIZE to run one process.",
            )
    world = values["WORLD_SIZE"]
    if world == 1:
        return None
    rank = values["RANK"]
    if rank >= world:
        raise DistributedError(
            f"inconsistent launch environment: RANK={rank} with WORLD_SIZE={world}, expected "
            f"RANK from 0 to {world - 1}.",
            fix=f"start the command with {TORCHRUN}, or unset WORLD_SIZE to run one process.",
        )
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not env.get(k)]
    if missing:
        raise DistributedError(
            f"inconsistent launch environment: WORLD_SIZE={world} but {' and '.join(missing)} "
            "unset, expected the address of rank 0 (torchrun sets it).",
            fix=f"start the command with {TORCHRUN}, or unset WORLD_SIZE to run one process.",
        )
    master = f"{env['MASTER_ADDR']}:{env['MASTER_PORT']}"
    return Launch(rank, world, values["LOCAL_RANK"], master)


@dataclass(frozen=True)
class Shard:
    """This rank's contiguous rows ``[start, stop)`` of a batch of ``total`` rows."""

    start: int
    stop: int
    total: int

    def rows(self, idx: Any) -> Any:
        """This rank's part of the batch ``idx`` (row indices, an array or a tensor)."""
        return idx[self.start : self.stop]


@dataclass(frozen=True)
class DistContext:
    """This process's rank among ``world_size``; the defaults are one process alone."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        """Whether there is more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes, prints and logs."""
        return self.rank == 0

    def describe(self) -> str:
        """The line rank 0 prints at the start."""
        return f"distributed: {self.world_size} processes, backend {self.backend}"

    def record(self) -> dict[str, Any]:
        """What a bundle or a report records of the run's processes."""
        return {"world_size": self.world_size, "backend": self.backend}

    def shard(self, n: int) -> Shard:
        """This rank's share of ``n`` rows: contiguous, sizes differing by one at most, in
        rank order (so the shards put end to end are the batch)."""
        base, extra = divmod(n, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return Shard(start, start + base + (self.rank < extra), n)

    # -- collectives (each is a no-op for one process) --------------------------------------

    def barrier(self) -> None:
        """Wait until every rank is here."""
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def gather(self, obj: T) -> list[T]:
        """Every rank's ``obj`` (any picklable value: numpy arrays, dicts), in rank order, on
        every rank."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: T, src: int = 0) -> T:
        """Rank ``src``'s ``obj`` on every rank."""
        if not self.enabled:
            return obj
        import torch.distributed as dist

        box = [obj if self.rank == src else None]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum over ranks of ``tensor``, differentiable: its gradient is the sum of every
        rank's gradient of the result (a new tensor; ``tensor`` is left alone)."""
        if not self.enabled:
            return tensor
        return _sum_over_ranks()(tensor)

    def gather_rows(self, local: torch.Tensor, shard: Shard) -> torch.Tensor:
        """The whole batch ``(shard.total, ...)`` from each rank's rows ``local``,
        differentiable (each rank's rows get the summed gradient of every rank's use).

        Zero-padded to the whole batch and summed over ranks: shards may differ in size, and
        adding zeros is exact."""
        if not self.enabled:
            return local
        from torch.nn import functional as F  # noqa: N812

        pad = [0, 0] * (local.dim() - 1) + [shard.start, shard.total - shard.stop]
        return self.all_reduce(F.pad(local, pad))

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Rank 0's parameters and buffers in ``module`` on every rank."""
        if not self.enabled:
            return
        import torch
        import torch.distributed as dist

        with torch.no_grad():
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, src=0)

    def wrap(self, module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """``module`` in DistributedDataParallel (parameters that a stage does not use are
        allowed; batch-norm buffers are kept equal by :func:`shard_layers`, not broadcast)."""
        if not self.enabled:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(
            module, device_ids=ids, find_unused_parameters=True, forward_sync_buffers=False
        )

    # -- errors -----------------------------------------------------------------------------

    def agree(self, error: BaseException | None) -> None:
        """Raise on every rank when any rank had an error (pass it, or ``None``).

        The rank that failed raises its own error; the others a :class:`DistributedError`
        naming it, with its exit code, so every process ends with the same status.
        """
        if not self.enabled:
            if error is not None:
                raise error
            return
        summary = None
        if error is not None:
            summary = (str(error).splitlines()[0], getattr(error, "exit_code", 1))
        failures = [(r, s) for r, s in enumerate(self.gather(summary)) if s is not None]
        if not failures:
            return
        if error is not None:
            raise error
        rank, (message, code) = failures[0]
        raise DistributedError(
            f"rank {self.rank} stops: rank {rank} failed: {message}", exit_code=code
        )

    def run_on_main(self, fn: Callable[[], T]) -> T | None:
        """``fn()`` on rank 0 only (its value there, ``None`` elsewhere); an error in it is
        raised on every rank."""
        value: T | None = None
        error: BaseException | None = None
        if self.is_main:
            try:
                value = fn()
            except Exception as exc:  # every rank must hear of it, then it is re-raised
                error = exc
        self.agree(error)
        return value


SINGLE = DistContext()
"""One process alone."""


@functools.cache
def _sum_over_ranks() -> Any:
    """The autograd function ``tensor -> sum over ranks``, whose backward sums the ranks'
    gradients (the gradient of a sum over ranks of each rank's use).

    Built on the plain blocking ``all_reduce`` of the default group. torch's functional
    collectives would do the same, but they keep the process group referenced after
    ``destroy_process_group``: its gloo threads then outlive the command and, torn down during
    the interpreter's exit, abort the process (SIGABRT, "terminate called without an active
    exception") after its work is done. Collectives run in the same order on every rank, as
    the ranks build the same graph.
    """
    import torch
    import torch.distributed as dist

    class SumOverRanks(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
            total = tensor.detach().clone()
            dist.all_reduce(total)
            return total

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
            total = grad.detach().clone()
            dist.all_reduce(total)
            return total

    return SumOverRanks.apply


@contextlib.contextmanager
def launched(device: str = "cpu", timeout_s: float | None = None) -> Iterator[DistContext]:
    """The process group of a torchrun launch, for the body of a command.

    ``device`` is the training device setting (``auto``, ``cpu``, ``cuda``): nccl on CUDA
    (each rank on GPU ``LOCAL_RANK``), gloo otherwise. Outside a launch this yields
    :data:`SINGLE` and does nothing else. Ranks other than 0 log errors only. The group is
    destroyed on the way out, also on an error.

    Raises
    ------
    DistributedError
        The environment is inconsistent, torch.distributed or the backend is missing, there
        are fewer GPUs than local ranks, or the group cannot be joined in ``timeout_s``.
    """
    launch = launch_from_env()
    if launch is None:
        yield SINGLE
        return
    if timeout_s is not None and not timeout_s > 0:
        raise DistributedError(
            f"--dist-timeout is {timeout_s:g} s, expected a positive number of seconds.",
            fix=f"pass --dist-timeout SECONDS above 0, or omit it ({DEFAULT_TIMEOUT_S:g} s).",
        )
    import torch

    dist = torch.distributed
    if not dist.is_available():
        raise DistributedError(
            f"a distributed run was asked for (WORLD_SIZE={launch.world_size}) but this torch "
            "build has no torch.distributed, expected a build with it.",
            fix="install the torch wheel from pytorch.org (scripts/setup.sh train), or run one "
            "process without torchrun.",
        )
    cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    backend = "nccl" if cuda else "gloo"
    if cuda:
        if launch.local_rank >= torch.cuda.device_count():
            raise DistributedError(
                f"local rank {launch.local_rank} has no GPU: torch sees "
                f"{torch.cuda.device_count()}, expected one per process on each node.",
                fix="use --nproc-per-node at most the number of GPUs, or --device cpu.",
            )
        torch.cuda.set_device(launch.local_rank)
    available = dist.is_nccl_available() if cuda else dist.is_gloo_available()
    if not available:
        raise DistributedError(
            f"torch.distributed has no {backend} backend, expected it for training on "
            f"{'CUDA' if cuda else 'the CPU'}.",
            fix="install the torch wheel from pytorch.org (scripts/setup.sh train).",
        )
    timeout = dt.timedelta(seconds=DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s)
    try:
        dist.init_process_group(
            backend, rank=launch.rank, world_size=launch.world_size, timeout=timeout
        )
    except (RuntimeError, ValueError) as exc:  # rendezvous refused or timed out
        raise DistributedError(
            f"rank {launch.rank} could not join the process group at {launch.master} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}).",
            fix="start every process with the same torchrun command and a reachable "
            "--rdzv-endpoint (or --standalone on one machine).",
        ) from exc
    ctx = DistContext(launch.rank, launch.world_size, launch.local_rank, backend)
    root = logging.getLogger()
    level = root.level
    if not ctx.is_main:
        root.setLevel(logging.ERROR)
    global _GROUP_JOINED
    _GROUP_JOINED = True
    try:
        yield ctx
    finally:
        root.setLevel(level)
        dist.destroy_process_group()


_GROUP_JOINED = False
"""Whether this process joined a process group (see :func:`end_process`)."""


def group_was_joined() -> bool:
    """Whether :func:`launched` joined a process group in this process."""
    return _GROUP_JOINED


def end_process(code: int) -> NoReturn:
    """End a process that joined a process group, with ``code``, once its output is out.

    ``destroy_process_group`` does not always free the group: torch 2.13 keeps it referenced
    once DistributedDataParallel has wrapped a module, or ``torch.export`` (under
    ``torch.onnx.export``) has traced one, while the group was up, even after those objects
    are gone; training does both, cross-validation exports ONNX in every fold. The group's
    gloo threads then outlive the command, and tearing them down with the interpreter aborted
    the process now and then (SIGABRT, "terminate called without an active exception") after
    its work was done: a finished run that torchrun reported as failed. So such a process
    flushes its output and logs and ends here, without the interpreter's teardown. Every file
    a command writes is closed before it returns.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken pipe: nothing to do
            stream.flush()
    logging.shutdown()
    os._exit(code)


class ShardedLayers:
    """While open, batch normalisation in training mode uses the whole batch's statistics
    and dropout the rows of one whole-batch mask, on the rank's shard of a batch.

    Set the current batch's shard with :meth:`use` before each forward pass. Every rank
    draws the same whole-batch mask from the same global generator (seeded alike), so the
    shards' masks put end to end are the mask one process would draw on CPU. The layers are
    patched on their instances and restored on :meth:`close`; nothing else changes.
    """

    def __init__(self, model: torch.nn.Module, ctx: DistContext):
        from torch import nn

        self.ctx = ctx
        self.shard: Shard | None = None
        self._patched: list[nn.Module] = []
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.forward = types.MethodType(self._batch_norm, module)  # type: ignore[method-assign]
            elif isinstance(module, nn.Dropout):
                module.forward = types.MethodType(self._dropout, module)  # type: ignore[method-assign]
            else:
                continue
            self._patched.append(module)

    def use(self, shard: Shard) -> None:
        """The shard of the batch the next forward passes see."""
        self.shard = shard

    def close(self) -> None:
        """Restore the layers."""
        for module in self._patched:
            del module.forward
        self._patched = []

    def _current(self) -> Shard:
        if self.shard is None:
            raise RuntimeError("ShardedLayers.use(shard) must be called before a forward pass")
        return self.shard

    def _batch_norm(self, bn: Any, x: torch.Tensor) -> torch.Tensor:
        import torch

        if not bn.training:
            return type(bn).forward(bn, x)
        shard = self._current()
        dims = (0, *range(2, x.dim()))
        shape = (1, -1) + (1,) * (x.dim() - 2)
        n = shard.total * int(torch.tensor(x.shape[2:]).prod().item())
        mean = self.ctx.all_reduce(x.sum(dims)) / n
        centred = x - mean.reshape(shape)
        var = self.ctx.all_reduce(centred.pow(2).sum(dims)) / n
        if bn.track_running_stats:
            with torch.no_grad():
                bn.num_batches_tracked.add_(1)
                m = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
                bn.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                bn.running_var.mul_(1 - m).add_(var.detach() * (n / max(n - 1, 1)), alpha=m)
        y = centred * torch.rsqrt(var + bn.eps).reshape(shape)
        if bn.affine:
            y = y * bn.weight.reshape(shape) + bn.bias.reshape(shape)
        return y

    def _dropout(self, drop: Any, x: torch.Tensor) -> torch.Tensor:
        if not drop.training or drop.p == 0:
            return type(drop).forward(drop, x)
        shard = self._current()
        if drop.p == 1:
            return x * 0.0
        noise = x.new_empty((shard.total, *x.shape[1:])).bernoulli_(1 - drop.p)
        noise.div_(1 - drop.p)
        return x * shard.rows(noise)


@contextlib.contextmanager
def shard_layers(model: torch.nn.Module, ctx: DistContext) -> Iterator[ShardedLayers]:
    """:class:`ShardedLayers` of ``model``, restored on the way out."""
    layers = ShardedLayers(model, ctx)
    try:
        yield layers
    finally:
        layers.close()

"""What the machine running a step can do: device, numeric precision and threads (shared by train and evaluate).

Precision ``auto`` picks bf16 only where the hardware computes it natively: a CUDA device with bf16 support, or a
CPU whose flags include ``avx512_bf16`` or ``amx_bf16`` (oneDNN then runs bf16 matmuls at up to twice the fp32
rate). Elsewhere bf16 would be emulated and slower than fp32, so ``auto`` means fp32. The choice is detected, not
assumed: a worker fleet can mix CPU generations and a GPU worker, and one DAG serves them all.

Threads: a Celery worker's task may be pinned to fewer cores than the machine has (``taskset``, cgroup cpusets,
a CPU quota in a container); torch's default (all cores of the machine) then oversubscribes and runs slower.
``configure_threads`` sets torch's intra-op threads to the cores this process may use, or to
``RERANKER_TORCH_THREADS`` when set.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reranker_tasks.config import PRECISIONS

log = logging.getLogger(__name__)

THREADS_ENV = "RERANKER_TORCH_THREADS"
_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class Compute:
    """The resolved device and precision of a step."""

    device: str  # "cuda" or "cpu"
    precision: str  # "fp32" or "bf16"
    reason: str  # why, for the task log
    threads: int

    @property
    def bf16(self) -> bool:
        return self.precision == "bf16"

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "precision": self.precision, "reason": self.reason, "threads": self.threads}


#: Plain fp32 on whatever device the model is on: what a caller without a resolved Compute gets.
FP32 = Compute(device="cpu", precision="fp32", reason="default", threads=0)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU feature flags the kernel reports (empty where there is no /proc/cpuinfo)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def cpu_has_bf16(flags: set[str] | None = None) -> bool:
    """Whether the CPU computes bf16 natively (AVX512-BF16 or AMX-BF16)."""
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in _BF16_CPU_FLAGS)


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def configure_threads() -> int:
    """Set torch's intra-op thread count to this task's cores (or ``RERANKER_TORCH_THREADS``); return it."""
    import torch

    wanted = os.environ.get(THREADS_ENV, "").strip()
    if wanted:
        try:
            threads = int(wanted)
        except ValueError:
            threads = 0
        if threads < 1:
            raise ValueError(f"{THREADS_ENV}={wanted!r}: expected a positive integer")
    else:
        threads = available_cores()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def resolve_compute(precision: str) -> Compute:
    """Resolve ``auto`` | ``fp32`` | ``bf16`` against this machine; also sets threads and CUDA's tf32.

    ``bf16`` asked explicitly on hardware without native bf16 still runs (emulated, slower) with a warning: the
    user may want bit-for-bit the numbers of a bf16 fleet.
    """
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision: {precision!r} is not one of {list(PRECISIONS)}")
    threads = configure_threads()
    if torch.cuda.is_available():
        # TF32 matmuls for whatever still runs in fp32 (the loss, fp32 mode): ~8x the fp32 rate on Ampere+.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        native = bool(torch.cuda.is_bf16_supported())
        device, hardware = "cuda", torch.cuda.get_device_name(0)
    else:
        native = cpu_has_bf16()
        device, hardware = "cpu", "CPU with native bf16" if native else "CPU without native bf16"
    if precision == "auto":
        chosen = "bf16" if native else "fp32"
        reason = f"auto: {hardware}"
    else:
        chosen = precision
        reason = f"asked: {hardware}"
        if precision == "bf16" and not native:
            log.warning("precision bf16 asked on a %s: it is emulated and slower than fp32", hardware)
    return Compute(device=device, precision=chosen, reason=reason, threads=threads)


@contextlib.contextmanager
def autocast(compute: Compute) -> Iterator[None]:
    """bf16 autocast on the step's device when bf16 was chosen; a no-op in fp32."""
    if not compute.bf16:
        yield
        return
    import torch

    with torch.autocast(device_type=compute.device, dtype=torch.bfloat16):
        yield


def for_scoring(model: Any, compute: Compute) -> Any:
    """Cast a scoring-only CrossEncoder's weights to bf16 in place when bf16 was chosen; returns it.

    Autocast alone keeps fp32 weights and casts them at every matmul; bf16 weights skip that and halve the
    memory traffic. Only for models that are scored and then dropped (the evaluate step's candidate, base and
    champion): the cast is lossy, so a model that is trained or saved afterwards must not go through it.
    """
    if compute.bf16:
        import torch

        model.to(torch.bfloat16)
    return model

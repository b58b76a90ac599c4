"""Which reader backend runs here: ``auto`` picks from the CPU's own capabilities or CUDA.

The policy (:func:`choose_backend`) is a pure function of the detected features, so it is
tested with hand-written flag sets; :func:`resolve_backend` adds the detection and lets an
explicit backend win.

>>> amx = CpuFeatures("Intel Xeon", frozenset({"avx2", "avx512_bf16", "amx_bf16", "avx512_vnni"}))
>>> choose_backend(amx, cuda=False).backend
'torch-bf16'
>>> choose_backend(CpuFeatures("AMD EPYC", frozenset({"avx2"})), cuda=False).backend
'torch-fp32'
>>> resolve_backend("onnx-int8", cpu=amx, cuda=False)
Choice(backend='onnx-int8', reason='set explicitly (auto would pick torch-bf16)')

Why each kind of machine gets its backend (the measurements are in the README, "Reader
backends", taken with ``bench/reader_speed.py``):

* AMX (Intel Xeon, 4th generation on): bf16 matmuls run on the tile unit, by far the
  fastest path, and bf16 with fp32 accumulation keeps EM/F1 within :data:`MAX_F1_LOSS`.
* AVX512-BF16 without AMX (e.g. AMD EPYC): native bf16 dot products, a smaller gain at the
  same accuracy, so still bf16.
* VNNI or AVX2 only: no native bf16 (emulated bf16 is slower than fp32); onnx-int8 is
  faster but its accuracy loss is larger than :data:`MAX_F1_LOSS`, so fp32.
* CUDA: the torch model on the GPU in fp32. bf16 on a GPU is very likely as accurate
  (the same bf16 weights with fp32 accumulation as on the CPUs above) but it is not picked
  until ``bench/reader_speed.py --device cuda`` has shown its F1.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

from koqa.settings import reader_backend_name

# the CPU flags that matter to the policy, strongest first (Linux /proc/cpuinfo names)
RELEVANT_FLAGS = ("amx_bf16", "amx_int8", "amx_tile", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx512f", "avx2")
MAX_F1_LOSS = 0.3  # a faster backend is picked only within this many F1 points of fp32 on eval-split


@dataclass(frozen=True)
class CpuFeatures:
    """The CPU's model name and its feature flags (lower case, as /proc/cpuinfo spells them)."""

    model: str
    flags: frozenset[str]

    @property
    def relevant(self) -> tuple[str, ...]:
        """The flags the policy looks at, in :data:`RELEVANT_FLAGS` order."""
        return tuple(f for f in RELEVANT_FLAGS if f in self.flags)

    @classmethod
    def parse(cls, cpuinfo: str) -> "CpuFeatures":
        """Features of the first processor listed in a /proc/cpuinfo text.

        >>> CpuFeatures.parse("model name\\t: Xeon\\nflags\\t\\t: fpu avx2 amx_bf16\\n").relevant
        ('amx_bf16', 'avx2')
        """
        model, flags = "", ""
        for line in cpuinfo.splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key == "model name" and not model:
                model = value.strip()
            elif key in ("flags", "features") and not flags:  # x86 / ARM spelling
                flags = value
        return cls(model or platform.processor() or "unknown", frozenset(flags.lower().split()))

    @classmethod
    def detect(cls, cpuinfo: Path = Path("/proc/cpuinfo")) -> "CpuFeatures":
        """This machine's features; no flags where /proc/cpuinfo cannot be read (not Linux)."""
        try:
            return cls.parse(cpuinfo.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            return cls(platform.processor() or platform.machine() or "unknown", frozenset())


@dataclass(frozen=True)
class Choice:
    """The reader backend to use and why (shown by ``koqa doctor``, ``koqa models``, ``/health``)."""

    backend: str
    reason: str


def choose_backend(cpu: CpuFeatures, cuda: bool, cuda_name: str = "") -> Choice:
    """The fastest backend whose eval-split F1 stays within :data:`MAX_F1_LOSS` of fp32 here.

    >>> choose_backend(CpuFeatures("EPYC", frozenset({"avx2", "avx512_bf16"})), cuda=False).reason
    'AVX512-BF16 without AMX (EPYC: avx512_bf16, avx2): native bf16 dot products, faster than fp32 within 0.3 F1'
    >>> choose_backend(CpuFeatures("EPYC", frozenset()), cuda=True, cuda_name="H100").backend
    'torch-fp32'
    """
    flags = cpu.relevant
    seen = f"{cpu.model}: {', '.join(flags) or 'none of ' + '/'.join(RELEVANT_FLAGS[3:])}"
    within = f"within {MAX_F1_LOSS} F1"
    if cuda:
        return Choice("torch-fp32", f"CUDA device {cuda_name or '0'}: torch on the GPU in fp32 (bf16 on a GPU is not "
                                    "yet proven by the speed bench)")
    if "amx_bf16" in cpu.flags:
        return Choice("torch-bf16", f"AMX ({seen}): bf16 matmuls on the tile unit, the fastest path, {within}")
    if "avx512_bf16" in cpu.flags:
        return Choice("torch-bf16", f"AVX512-BF16 without AMX ({seen}): native bf16 dot products, faster than fp32 "
                                    f"{within}")
    if {"avx512_vnni", "avx_vnni"} & cpu.flags:
        return Choice("torch-fp32", f"VNNI but no native bf16 ({seen}): onnx-int8 is faster but not {within}, "
                                    "so fp32")
    return Choice("torch-fp32", f"no native bf16 or VNNI ({seen}): emulated bf16 is slower than fp32 and "
                                f"onnx-int8 is not {within}, so fp32")


def detect_cuda(device: str | None = None) -> tuple[bool, str]:
    """(whether the reader would run on CUDA, the device name). ``device`` "cpu" rules CUDA out."""
    if device is not None and not str(device).startswith("cuda"):
        return False, ""
    import torch

    if not torch.cuda.is_available():
        return False, ""
    return True, torch.cuda.get_device_name(0)


def resolve_backend(requested: str = "auto", *, device: str | None = None, cpu: CpuFeatures | None = None,
                    cuda: bool | None = None) -> Choice:
    """The backend for ``requested``: an explicit one wins; ``auto`` asks :func:`choose_backend`.

    ``cpu`` and ``cuda`` default to this machine's (``device`` "cpu" means no CUDA).
    Raises InvalidInput for an unknown backend name.
    """
    requested = reader_backend_name(requested)
    cpu = cpu or CpuFeatures.detect()
    name = ""
    if cuda is None:
        cuda, name = detect_cuda(device)
    auto = choose_backend(cpu, cuda, name)
    if requested == "auto":
        return Choice(auto.backend, f"auto: {auto.reason}")
    return Choice(requested, "set explicitly" + ("" if auto.backend == requested else f" (auto would pick {auto.backend})"))

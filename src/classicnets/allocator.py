"""CPU memory settings that make training steps faster, applied by `configure()`: the CLI calls
it first thing, and a library user may call it before their first tensor. Importing classicnets
changes nothing.

PyTorch has no caching allocator on the CPU: every activation and gradient of a step is a
fresh malloc, and glibc serves blocks over 32 MB with a new mmap that the kernel must fault in
and zero, then unmaps on free. An alexnet_cifar step at batch 128 took about 12,000 page faults
that way, even with huge pages. Two settings remove that cost (benchmarks/RESULTS.md):

- THP_MEM_ALLOC_ENABLE=1: PyTorch backs tensors over 2 MB with transparent huge pages, so a
  fresh 50 MB activation costs 25 faults instead of 12,800. It is read at torch's first
  allocation, so it only acts when `configure()` runs before that.
- glibc malloc keeps freed blocks (no mmap for large blocks, no trimming of the heap's top),
  so the next step reuses last step's memory with no faults: what PyTorch's CUDA caching
  allocator does on a GPU. The process then keeps its peak memory until it exits. Reuse
  works for the 2 MB-aligned blocks of the huge-page path; with THP_MEM_ALLOC_ENABLE=0 glibc
  often cannot fit a 64-byte-aligned block into the hole the last one left, and faults again.

A value the user set wins: THP_MEM_ALLOC_ENABLE=0, or any glibc malloc setting in the
environment (GLIBC_TUNABLES=glibc.malloc.*, MALLOC_MMAP_MAX_, ...), leaves that part alone.
"""

import ctypes
import os
import platform
from collections.abc import Mapping

# mallopt(3) parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_LARGEST_INT = 2**31 - 1  # mallopt takes a C int


def user_set_malloc(environ: Mapping[str, str]) -> bool:
    """Whether the environment already configures glibc malloc."""
    tunables = environ.get("GLIBC_TUNABLES", "")
    return "glibc.malloc." in tunables or any(key.startswith("MALLOC_") for key in environ)


def keep_freed_memory() -> str:
    """Ask glibc malloc to reuse freed memory instead of returning it; says what was done."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "system (not glibc)"
    if user_set_malloc(os.environ):
        return "system (set by the user's environment)"
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return "system (no mallopt)"
    if mallopt(_M_MMAP_MAX, 0) != 1 or mallopt(_M_TRIM_THRESHOLD, _LARGEST_INT) != 1:
        return "system (mallopt refused)"
    return "keep freed memory (M_MMAP_MAX=0, M_TRIM_THRESHOLD=2 GiB)"


# What configure() did to this process's malloc, for env.json: process state, recorded once.
_applied: dict[str, str] = {}


def configure() -> str:
    """Apply both settings (once per process); says what was done to malloc."""
    if "malloc" not in _applied:
        os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
        _applied["malloc"] = keep_freed_memory()
    return _applied["malloc"]


def malloc_setting() -> str:
    """What configure() did to malloc in this process, or that it was not called."""
    return _applied.get("malloc", "system (classicnets.allocator.configure() not called)")

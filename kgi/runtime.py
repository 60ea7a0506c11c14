"""Settings of a process that runs the pipeline over and over: intra-op threads and the C allocator.

:func:`configure_inference_process` is what a serving replica, a batch-inference actor or a benchmark's
in-process baseline calls once before its first request; a training worker calls :func:`retain_freed_memory`.

Why the allocator: every call of the pipeline allocates and frees tens of megabytes of tensors (stage 2 about
60 MB at 256x192). glibc's malloc serves blocks over its ``mmap`` threshold with fresh ``mmap`` pages and hands
freed memory at the top of its heap back to the kernel, so the next call touches brand-new pages again: about
15,000 page faults per ``parse_and_warp`` call, a third of its time (80 -> 62 ms in one process, and up to
150 ms more inside a Serve replica). Raising both thresholds keeps freed memory in the process for the next call;
the process's peak memory stays what it was (the same peak, now reused instead of returned and re-faulted).
"""

from __future__ import annotations

import ctypes
import logging

logger = logging.getLogger(__name__)

# mallopt(3) parameters of glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's largest on 64-bit: blocks up to 32 MiB come from the reusable heap
TRIM_THRESHOLD_BYTES = 256 << 20  # free memory kept at the heap's top before any is returned to the kernel


def set_intra_op_threads(threads: int | None) -> None:
    """Limit this process's intra-op threads (torch and OpenCV); ``None`` keeps the libraries' defaults."""
    if threads is None:
        return
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


def retain_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of unmapping it (see the module docstring).

    Returns whether the setting took: ``False`` where the C library is not glibc (macOS, musl), which is harmless,
    as the pipeline only runs slower there.
    """
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    if not applied:
        logger.info("this C library refused mallopt; freed memory is returned to the kernel as usual")
    return applied


def configure_inference_process(threads: int | None) -> None:
    """:func:`set_intra_op_threads` and :func:`retain_freed_memory`, once per process before the first request.

    Args:
        threads: intra-op threads of torch and OpenCV; ``None`` keeps the libraries' defaults.
    """
    set_intra_op_threads(threads)
    retain_freed_memory()

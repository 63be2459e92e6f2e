"""How a command's processes hand freed memory back to the system."""

from __future__ import annotations

#: glibc's malloc.h
_M_MMAP_THRESHOLD = -3


def return_large_blocks() -> None:
    """glibc serves a block of 128 KB or more with its own mapping, returned to the system when
    freed, until the first such free: then it raises that threshold and keeps the freed blocks
    (a batch's answer, its COPY buffers) in the heap for the rest of the command. Held at 128 KB,
    a first mirror of 100,000 peaked 3-4 MB lower. Elsewhere than glibc this does nothing."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, 128 * 1024)
    except (OSError, AttributeError):
        pass

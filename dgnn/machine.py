"""What this machine has free for a new job, read where the data layer and the trainer both need it."""

from __future__ import annotations

import os


def available_memory() -> int:
    """Bytes of memory available to new allocations (``MemAvailable``; physical memory elsewhere)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")

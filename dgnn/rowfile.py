"""A node-sized float32 matrix in a ``.npy`` file, read and written by rows, never whole.

Blocks of rows are read and written with plain file reads and writes (``os.pread`` /
``os.pwrite``), not through a memory map, so a pass over a 5 GB file keeps one block in memory and
leaves the process's resident size where it was; batches of rows are gathered through a map
(:meth:`RowFile.mapped`) that its user drops when done, and with it the pages it read. Any process that sees the file can write any block of it, in any
order (a Dask worker writing one block of a propagation).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

DTYPE = np.dtype(np.float32)


class RowFile:
    """An ``[rows, cols]`` float32 ``.npy`` file; ``shape`` and ``len`` like a tensor's."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(f)
            self.offset = f.tell()
        if len(shape) != 2 or fortran or dtype != DTYPE:
            raise ValueError(f"{self.path}: expected a C-ordered 2-d float32 array, got {dtype} {shape}")
        self.shape = torch.Size(shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"RowFile({str(self.path)!r}, shape={tuple(self.shape)})"

    @property
    def row_bytes(self) -> int:
        return self.shape[1] * DTYPE.itemsize

    @classmethod
    def create(cls, path: Path | str, rows: int, cols: int) -> "RowFile":
        """A new file of ``rows`` x ``cols`` (contents undefined until every block is written)."""
        path = Path(path)
        with open(path, "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(DTYPE),
                                                     "fortran_order": False, "shape": (rows, cols)})
            f.truncate(f.tell() + rows * cols * DTYPE.itemsize)
        return cls(path)

    def read(self, start: int, end: int) -> torch.Tensor:
        """Rows ``[start, end)`` as a new CPU tensor."""
        out = np.empty((end - start, self.shape[1]), dtype=DTYPE)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            view, done = memoryview(out).cast("B"), 0
            while done < len(view):  # pread may return fewer bytes than asked on large reads
                got = os.preadv(fd, [view[done:]], self.offset + start * self.row_bytes + done)
                if got == 0:
                    raise EOFError(f"{self.path} is shorter than its header says (truncated?)")
                done += got
        finally:
            os.close(fd)
        return torch.from_numpy(out)

    def write(self, start: int, rows: torch.Tensor) -> None:
        """Write ``rows`` (float32, ``cols`` wide) at row ``start``."""
        data = np.ascontiguousarray(rows.detach().cpu().numpy(), dtype=DTYPE)
        if data.ndim != 2 or data.shape[1] != self.shape[1] or start + len(data) > len(self):
            raise ValueError(f"{self.path}: cannot write {data.shape} at row {start} of {tuple(self.shape)}")
        fd = os.open(self.path, os.O_WRONLY)
        try:
            view, done = memoryview(data).cast("B"), 0
            while done < len(view):
                done += os.pwritev(fd, [view[done:]], self.offset + start * self.row_bytes + done)
        finally:
            os.close(fd)

    def mapped(self) -> np.ndarray:
        """The whole matrix, memory-mapped read-only: rows are read as they are indexed."""
        return np.load(self.path, mmap_mode="r")

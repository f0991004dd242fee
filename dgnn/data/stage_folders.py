"""Stage output folders under ``data/``: content hashes, ``meta.json``, integrity checks and
atomic replacement."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from dgnn.data.errors import NoSpace
from dgnn.processes import pid_alive

META = "meta.json"
VERDICTS = ".verified.json"  # beside the stage folders, not inside: DVC hashes the folders
# File times are coarse (a kernel tick, 2 s on FAT): a file changed this soon after it was hashed
# could change again and keep its mtime, so such a verdict is not remembered.
_RACY_NS = 2 * 10**9
_TEMP = re.compile(r"\.tmp-(\d+)(?:-|$)")  # the writer's pid in a temporary name beside its target


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def file_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file in ``folder`` except ``meta.json``, by name."""
    folder = Path(folder)
    return {p.name: file_sha256(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != META}


def _listing_hash(files: dict[str, str]) -> str:
    listing = "".join(f"{name}\0{digest}\n" for name, digest in files.items())
    return hashlib.sha256(listing.encode()).hexdigest()


def content_hash(path: Path) -> str:
    """SHA-256 over the names and SHA-256s of a stage folder's data files (``meta.json`` excluded)."""
    return _listing_hash(file_hashes(path))


def write_meta(folder: Path, meta: dict) -> dict:
    """Write ``meta.json`` with the per-file hashes and the folder's content hash added; return it."""
    folder = Path(folder)
    files = file_hashes(folder)
    meta = {**meta, "files": files, "content_hash": _listing_hash(files)}
    (folder / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def read_meta(folder: Path) -> dict:
    return json.loads((Path(folder) / META).read_text())


def is_stored(folder: Path) -> bool:
    """True once a folder was completely written (``meta.json`` is written last)."""
    return (Path(folder) / META).exists()


def is_current(folder: Path, inputs: dict) -> bool:
    """True if the folder is stored and was derived from exactly ``inputs`` (content hashes)."""
    return is_stored(folder) and read_meta(folder).get("inputs") == inputs


def damaged_files(folder: Path) -> list[str]:
    """Files of a stored folder that differ from the SHA-256s in its ``meta.json`` (changed,
    missing or added), hashing every file."""
    recorded, actual = read_meta(folder)["files"], file_hashes(folder)
    return sorted(n for n in recorded.keys() | actual.keys() if recorded.get(n) != actual.get(n))


def _fingerprint(folder: Path) -> dict:
    return {p.name: [s.st_size, s.st_mtime_ns, s.st_ino] for p in sorted(folder.iterdir()) for s in [p.stat()]}


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def is_intact(folder: Path) -> bool:
    """Whether no file of a stored folder differs from its ``meta.json`` (see :func:`damaged_files`).

    Hashed once: a clean verdict is remembered in :data:`VERDICTS` beside the folder by each file's
    size, mtime and inode, so later loads only ``stat`` the files until one of those changes.
    """
    folder = Path(folder)
    now, fingerprint = time.time_ns(), _fingerprint(folder)
    verdicts_file = folder.parent / VERDICTS
    if _read_json(verdicts_file).get(folder.name) == fingerprint:
        return True
    if damaged_files(folder):
        return False
    if now - max(mtime for _, mtime, _ in fingerprint.values()) > _RACY_NS:
        verdicts = {**_read_json(verdicts_file), folder.name: fingerprint}
        try:
            write_atomically(verdicts_file, lambda tmp: tmp.write_text(json.dumps(verdicts, indent=1)))
        except OSError:
            pass  # a read-only data folder: hash again next time
    return True


def write_atomically(path: Path, write) -> None:
    """``write(tmp)`` to a temporary file beside ``path``, then rename it over ``path``: readers
    see the old file or the new one, never part of one. A failed write leaves no temporary file;
    one that filled the disk raises :class:`NoSpace` saying so."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
    except BaseException as err:
        full = _disk_full(err, path.parent)  # before the partial file is removed and its room freed
        tmp.unlink(missing_ok=True)
        if full:
            raise NoSpace(f"writing {path} failed: the disk is full ({shutil.disk_usage(path.parent).free // 10**6} MB "
                          f"free in {path.parent}): free space there and rerun") from None
        raise
    os.replace(tmp, path)


def _disk_full(err: BaseException, folder: Path) -> bool:
    if isinstance(err, OSError):
        return err.errno in (errno.ENOSPC, errno.EDQUOT)
    # torch.save turns a short write into a RuntimeError whose text varies ("unexpected pos",
    # "iostream error"): a disk with (almost) no room left tells it.
    return isinstance(err, RuntimeError) and shutil.disk_usage(folder).free < _FULL_BYTES


_FULL_BYTES = 1 << 20


def sweep_stale_temps(folder: Path) -> None:
    """Remove the ``.*.tmp-*`` files and folders in ``folder`` whose writer no longer runs (left by
    a crash or kill mid-write); a name without a pid is from an older version and stale too."""
    for path in Path(folder).glob(".*.tmp-*"):
        pid = _TEMP.search(path.name)
        if pid is not None and pid_alive(int(pid.group(1))):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)  # another writer may be sweeping it too
        else:
            path.unlink(missing_ok=True)


def require_space(folder: Path, needed: int, what: str) -> None:
    """Raise :class:`NoSpace` unless ``folder``'s file system has ``needed`` bytes free (a
    memory-mapped write past a full disk kills the process with SIGBUS instead of raising)."""
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise NoSpace(
            f"{what} needs {-(-needed // 10**6)} MB, {free // 10**6} MB free in {folder}: free space there "
            "or point --data-dir / $DGNN_DATA_DIR at a larger disk"
        )


class LockHeld(OSError):
    """Another process holds the lock that :func:`file_lock` was told not to wait for."""


@contextmanager
def file_lock(path: Path, shared: bool = False, wait: bool = True):
    """Hold an ``flock`` on ``path`` (created if missing) and yield its file descriptor.

    Exclusive unless ``shared``; raises :class:`LockHeld` at once when ``wait`` is false and another
    holder conflicts. The kernel drops the lock when the holder exits, however it ends. The file
    stays: removing a lock file others may be waiting on would let two holders lock two files.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LockHeld(errno.EWOULDBLOCK, "locked by another process", str(path)) from None
        yield fd
    finally:
        os.close(fd)  # releases the lock


@functools.cache
def _renameat2():
    function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return function


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _exchange(a: Path, b: Path) -> bool:
    """Trade the names of ``a`` and ``b`` in one step (Linux ``renameat2``); False where the C
    library or the file system cannot."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _swap_in(new: Path, dest: Path) -> None:
    """Put folder ``new`` at ``dest`` and delete the version it replaces. Readers always find a
    complete ``dest``: the two folders trade names in one rename. Only where that is unsupported is
    ``dest`` missing for a moment (two renames)."""
    if dest.exists() and _exchange(new, dest):
        shutil.rmtree(new)  # now the old version; a ``.tmp-<pid>`` name, so a crash here is swept
        return
    old = new.with_name(f"{new.name}-old")
    if dest.exists():
        os.replace(dest, old)
    os.replace(new, dest)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_folder(dest: Path, needed: int = 0):
    """Yield an empty temporary folder beside ``dest``; on success it replaces ``dest`` (:func:`_swap_in`).

    Writers of one ``dest`` take turns: each holds an ``flock`` on ``.<name>.lock`` beside it from
    start to swap. Stale temporaries of crashed writes beside ``dest`` are removed first; then
    ``needed`` bytes must be free (:func:`require_space`). On any error the temporary folder, and
    any parent folder created for it, is removed, so ``data/`` is left exactly as it was and an
    earlier ``dest`` stays untouched.
    """
    dest = Path(dest)
    created = [p for p in [dest.parent, *dest.parent.parents] if not p.exists()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    lock = dest.with_name(f".{dest.name}.lock")
    with file_lock(lock):
        tmp = None
        try:
            sweep_stale_temps(dest.parent)
            require_space(dest.parent, needed, f"writing {dest}")
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-{os.getpid()}-", dir=dest.parent))
            tmp.chmod(0o755)
            yield tmp
        except BaseException:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            if created:  # leave no trace of folders that did not exist (the swap stays atomic
                # even if a writer that began in this instant then overlaps the next one)
                lock.unlink(missing_ok=True)
            for parent in created:
                if parent.exists() and not any(parent.iterdir()):
                    parent.rmdir()
            raise
        _swap_in(tmp, dest)

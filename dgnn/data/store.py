"""Stage output folders under ``data/``: content hashes, ``meta.json`` and atomic replacement."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

META = "meta.json"


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


def write_atomically(path: Path, write) -> None:
    """``write(tmp)`` to a temporary file beside ``path``, then rename it over ``path``: readers
    see the old file or the new one, never part of one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


@contextmanager
def atomic_folder(dest: Path):
    """Yield an empty temporary folder beside ``dest``; on success it replaces ``dest`` by renames.

    On any error the temporary folder, and any parent folder created for it, is removed, so
    ``data/`` is left exactly as it was and an earlier ``dest`` stays untouched.
    """
    dest = Path(dest)
    created = [p for p in [dest.parent, *dest.parent.parents] if not p.exists()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        tmp.chmod(0o755)
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for parent in created:
            if parent.exists() and not any(parent.iterdir()):
                parent.rmdir()
        raise
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)

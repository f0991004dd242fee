"""Two writers replacing one stage folder at once, with a reader watching it (real processes)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from dgnn.data.stage_folders import META

SECONDS = 3.0

# Replaces DEST again and again for SECONDS; prints {"swaps": n, "errors": [...]}.
WRITER = """
import json, sys, time
from pathlib import Path
from dgnn.data.stage_folders import atomic_folder, write_meta

dest, seconds, name = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
swaps, errors, end = 0, [], time.monotonic() + seconds
while time.monotonic() < end:
    try:
        with atomic_folder(dest) as tmp:
            for part in ("a", "b", "c"):
                (tmp / f"{part}.txt").write_text(f"{name} {swaps}")
            write_meta(tmp, {"writer": name, "swap": swaps})
        swaps += 1
    except OSError as err:
        errors.append(repr(err))
print(json.dumps({"swaps": swaps, "errors": errors[:5], "error_count": len(errors)}))
"""


def _complete(folder) -> bool:
    """The folder exists with a whole meta.json (written last, so the folder was completely written)."""
    try:
        return "content_hash" in json.loads((folder / META).read_text())
    except (OSError, ValueError):
        return False


def test_two_writers_swap_one_folder_while_a_reader_always_finds_it_complete(tmp_path):
    dest = tmp_path / "data" / "toy" / "graph"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(dest), str(SECONDS), name],
                                stdout=subprocess.PIPE, text=True) for name in ("w1", "w2")]
    while not (dest / META).exists():  # the first swap
        time.sleep(0.001)
    checks = missing = 0
    while any(w.poll() is None for w in writers):
        checks += 1
        missing += not _complete(dest)
    results = [json.loads(w.communicate()[0]) for w in writers]

    assert [w.returncode for w in writers] == [0, 0]
    assert [r["error_count"] for r in results] == [0, 0], results
    assert all(r["swaps"] > 10 for r in results), results
    assert checks > 100 and missing == 0, f"{missing} of {checks} checks found the folder missing or partial"
    assert sorted(p.name for p in dest.parent.iterdir()) == [".graph.lock", "graph"]  # no temporaries

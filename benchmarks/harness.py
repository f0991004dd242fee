"""Parent side: start one child process per (method, dataset), watch it, collect what it wrote.

The parent polls the child's resident memory (psutil, every 0.2 s) and kills it past
``mem_limit_gb`` ("out of memory") or past ``timeout_s`` ("out of time"); either way the child's
progress file says how far it got. Peak RSS is the child's own ``ru_maxrss`` (from ``os.wait4``,
so it is known even for a killed child), cross-checked with the polled maximum.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Spec:
    method: str  # key of benchmarks.methods.METHODS, or "dgnn-paper" (DGNN with another config)
    dataset: str
    seeds: list[int]
    config: str | None = None  # DGNN config file
    feature_norm: str = "row"
    epochs: int | None = None
    budget_s: float | None = None  # per seed, peers stop gracefully after it
    timeout_s: float = 1800.0  # whole process, killed after it
    mem_limit_gb: float = 14.0
    group: str = "peers"  # "peers", "scaling" or "core"

    @property
    def name(self) -> str:
        return f"{self.method}-{self.dataset}"

    @property
    def trainer(self) -> str:
        return "dgnn" if self.method.startswith("dgnn") else self.method


@dataclass
class Record:
    spec: Spec
    status: str  # ok, out of time, out of memory, error
    setup: dict = field(default_factory=dict)
    seeds: list[dict] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    polled_peak_rss_mb: float = 0.0
    wall_seconds: float = 0.0
    last_progress: dict | None = None
    progress_lines: int = 0
    error: str = ""
    load_before: float = 0.0
    load_after: float = 0.0


def _tree_rss(proc: psutil.Process) -> int:
    try:
        procs = [proc, *proc.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs)
    except psutil.Error:
        return 0


def run(spec: Spec, work: Path, data_dir: Path, log=print, threads: int = 1) -> Record:
    """Run ``spec`` in a fresh child process and return what it reported."""
    work.mkdir(parents=True, exist_ok=True)
    out, progress = work / f"{spec.name}.jsonl", work / f"{spec.name}.progress.jsonl"
    for f in (out, progress):
        f.unlink(missing_ok=True)
    cmd = _child_command(spec, data_dir, out, progress, threads)
    stderr_path = work / f"{spec.name}.stderr"
    record = Record(spec, "ok", load_before=os.getloadavg()[0])
    start = time.perf_counter()
    with open(stderr_path, "w") as stderr:
        child = subprocess.Popen(cmd, cwd=REPO, stdout=stderr, stderr=stderr)
        watched = psutil.Process(child.pid)
        killed = None
        while _alive(child.pid):
            rss = _tree_rss(watched)
            record.polled_peak_rss_mb = max(record.polled_peak_rss_mb, rss / 2**20)
            elapsed = time.perf_counter() - start
            if rss > spec.mem_limit_gb * 2**30:
                killed = f"out of memory (RSS {rss / 2**30:.1f} GiB > limit {spec.mem_limit_gb} GiB)"
            elif elapsed > spec.timeout_s:
                killed = f"out of time (process limit {spec.timeout_s:.0f} s)"
            if killed:
                os.kill(child.pid, signal.SIGKILL)
                break
            time.sleep(0.2)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    record.wall_seconds = time.perf_counter() - start
    record.load_after = os.getloadavg()[0]
    record.peak_rss_mb = usage.ru_maxrss / 1024
    for line in _lines(out):
        if line["kind"] == "setup":
            record.setup = line
        elif line["kind"] == "seed":
            record.seeds.append(line)
        elif line["kind"] == "done":
            record.peak_rss_mb = max(record.peak_rss_mb, line["peak_rss_mb"])
    progress_lines = _lines(progress)
    record.progress_lines = len(progress_lines)
    record.last_progress = progress_lines[-1] if progress_lines else None
    if killed:
        record.status = killed
    elif child.returncode != 0:
        record.status = "error"
        record.error = stderr_path.read_text()[-2000:]
    elif any(s.get("stopped_early") for s in record.seeds):
        record.status = "out of time (budget)"
    log(f"[{spec.group}] {spec.name}: {record.status}, {len(record.seeds)} seed(s), "
        f"wall {record.wall_seconds:.1f} s, peak RSS {record.peak_rss_mb:.0f} MB, load {record.load_before:.1f}")
    if record.status == "error":
        log(record.error)
    return record


def _child_command(spec: Spec, data_dir: Path, out: Path, progress: Path, threads: int) -> list[str]:
    cmd = [sys.executable, "-m", "benchmarks.child", "--method", spec.trainer, "--dataset", spec.dataset,
           "--seeds", ",".join(map(str, spec.seeds)), "--data-dir", str(data_dir), "--out", str(out),
           "--progress", str(progress), "--feature-norm", spec.feature_norm, "--threads", str(threads)]
    if spec.config:
        cmd += ["--config", str(spec.config)]
    if spec.epochs:
        cmd += ["--epochs", str(spec.epochs)]
    if spec.budget_s:
        cmd += ["--budget", str(spec.budget_s)]
    return cmd


def _alive(pid: int) -> bool:
    """True while the child runs (it stays a zombie until ``os.wait4`` reaps it)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill
            pass
    return rows


def prepare(dataset: str, data_dir: Path) -> dict:
    """Fetch / generate ``dataset`` into ``data_dir`` in a child process (untimed)."""
    cmd = [sys.executable, "-m", "benchmarks.child", "--prepare", "--dataset", dataset, "--data-dir", str(data_dir)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"fetching {dataset} failed: {done.stderr[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])

"""How far the first SGD step is from the command line: the call stack at the first module loss of
``dgnn run`` and of ``dgnn tune``, and the project's files loaded by then (docs/architecture.md).

    .venv/bin/python -m benchmarks.path_to_sgd    # writes benchmarks/results/path_to_sgd.json

Each command runs in a fresh process, in a throw-away project (its own stores and data folder,
the datasets from the mirror), with a one-module Cora config of 20 SGD steps (``run``) or one trial
of the shipped search space (``tune``). At its first call of the module loss the stack is read
(every frame, and the frames in the project's own files) with the project modules loaded so far;
the command then goes on as usual.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

from adapters.process import settings

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "benchmarks" / "results" / "path_to_sgd.json"
PACKAGES = ("cli", "flows", "adapters", "dgnn")
TINY = """dataset: cora
train:
  task: classify
  feature_norm: row
  bp_count: 0
  modules:
  - {width: 16, order: 2, lr: 0.01, steps: 20, batch_size: 140}
"""


def _project_file(filename: str) -> str | None:
    path = Path(filename).resolve()
    if REPO in path.parents and path.relative_to(REPO).parts[0] in PACKAGES:
        return str(path.relative_to(REPO))
    return None


def _record_first_loss(out: Path) -> None:
    """Wrap the module loss so that its first call writes the stack and the loaded modules to ``out``."""
    from dgnn.module_training import ModuleTraining

    loss = ModuleTraining._module_loss

    def first(self, *args, **kwargs):
        if not out.exists():
            stack = traceback.extract_stack()[:-1]
            project = [f"{_project_file(f.filename)}:{f.name}" for f in stack if _project_file(f.filename)]
            modules = sorted(name for name, module in sys.modules.items()
                             if name.split(".")[0] in PACKAGES and getattr(module, "__file__", None)
                             and _project_file(module.__file__))
            out.write_text(json.dumps({"frames": len(stack), "project_frames": project,
                                       "project_modules_loaded": modules}))
        return loss(self, *args, **kwargs)

    ModuleTraining._module_loss = first


def _child(command: str, out: Path, config: Path) -> int:
    _record_first_loss(out)
    from cli.main import main

    argv = {"run": ["run", "--dataset", "cora", "--config", str(config), "--device", "cpu", "--quiet"],
            "tune": ["tune", "--dataset", "cora", "--trials", "1", "--device", "cpu", "--quiet"]}[command]
    return main(argv)


def measure(command: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="dgnn-path-") as tmp:
        work, out = Path(tmp), Path(tmp) / "first-loss.json"
        config = work / "tiny.yaml"
        config.write_text(TINY)
        env = {**settings.without_tool_settings(),
               "DGNN_PROJECT_DIR": str(work), "DGNN_DATA_DIR": str(work / "data"),
               "DGNN_DATA_MIRROR": os.environ.get("DGNN_DATA_MIRROR") or str(REPO.parent / "shared" / "datasets")}
        proc = subprocess.run([sys.executable, "-m", "benchmarks.path_to_sgd", "--child", command, "--out", str(out),
                               "--config", str(config)], cwd=work, env={**env, "PYTHONPATH": str(REPO)},
                              capture_output=True, text=True)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"`dgnn {command}` failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
        found = json.loads(out.read_text())
    files = list(dict.fromkeys(frame.split(":")[0] for frame in found["project_frames"]))
    return {"command": f"dgnn {command}", "stack_frames": found["frames"],
            "project_frames": len(found["project_frames"]), "project_files_on_the_stack": files,
            "project_modules_loaded": len(found["project_modules_loaded"]),
            "project_frames_in_order": found["project_frames"], "modules": found["project_modules_loaded"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", choices=("run", "tune"))
    p.add_argument("--out")
    p.add_argument("--config")
    args = p.parse_args(argv)
    if args.child:
        return _child(args.child, Path(args.out), Path(args.config))
    results = [measure("run"), measure("tune")]
    RESULT.write_text(json.dumps(results, indent=2) + "\n")
    for r in results:
        print(f"{r['command']}: {r['stack_frames']} stack frames at the first SGD step, {r['project_frames']} of "
              f"them in {len(r['project_files_on_the_stack'])} project files; {r['project_modules_loaded']} "
              "project modules loaded by then")
    return 0


if __name__ == "__main__":
    sys.exit(main())

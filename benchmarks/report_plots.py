"""The plots of ``REPORT.md``: accuracy against training time, and time or memory against graph
size with the fitted exponent."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from benchmarks.plan import PEERS, REAL

LABELS = {"dgnn": "DGNN (ours)", "dgnn-paper": "DGNN, authors' settings", "gcn": "PyG GCN",
          "sgc": "PyG SGC", "sign": "SIGN"}
STYLE = {"dgnn": ("tab:red", "o"), "dgnn-paper": ("tab:pink", "P"), "gcn": ("tab:blue", "s"),
         "sgc": ("tab:green", "^"), "sign": ("tab:purple", "D")}


def fmt(x, fmt="{:.1f}", none="–"):
    return none if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def fit_exponent(xs, ys) -> float | None:
    """Slope of log y against log x (least squares); None with fewer than two points."""
    pts = [(x, y) for x, y in zip(xs, ys) if x and y and x > 0 and y > 0]
    if len(pts) < 2:
        return None
    lx, ly = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(lx, ly, 1)[0])



def plot_accuracy_vs_time(peers, path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = [d for d in REAL if any(r["dataset"] == d for r in peers)]
    if not datasets:
        return None
    cols = min(3, len(datasets))
    nrows = math.ceil(len(datasets) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5 * cols, 4 * nrows), squeeze=False)
    for ax, dataset in zip(axes.flat, datasets):
        for r in peers:
            if r["dataset"] != dataset or r.get("test_acc_mean") is None:
                continue
            color, marker = STYLE.get(r["method"], ("gray", "x"))
            ax.errorbar(r["train_seconds_mean"], 100 * r["test_acc_mean"], yerr=100 * (r.get("test_acc_std") or 0),
                        xerr=r.get("train_seconds_std") or 0, fmt=marker, color=color, capsize=3,
                        label=LABELS.get(r["method"], r["method"]))
            if r.get("time_to_best_val_mean"):
                ax.plot(r["time_to_best_val_mean"], 100 * r["test_acc_mean"], marker, mfc="none", color=color, alpha=0.7)
        ax.set_xscale("log")
        ax.set_title(dataset)
        ax.set_xlabel("training time, s (log; filled: total, hollow: to best val)")
        ax.set_ylabel("test accuracy, %")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(datasets):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_scaling(scaling, key: str, ylabel: str, path: Path, scale: float = 1.0) -> tuple[Path | None, dict]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exponents: dict[str, float | None] = {}
    if not scaling:
        return None, exponents
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for method in PEERS:
        rows = sorted((r for r in scaling if r["method"] == method and r.get("edges")), key=lambda r: r["edges"])
        ok = [r for r in rows if r["status"] == "ok" and r.get(key)]
        exponents[method] = fit_exponent([r["edges"] for r in ok], [r[key] for r in ok])
        color, marker = STYLE[method]
        if ok:
            label = f"{LABELS[method]} (exponent {fmt(exponents[method], '{:.2f}')})"
            ax.plot([r["edges"] for r in ok], [r[key] * scale for r in ok], marker + "-", color=color, label=label)
        cut = [r for r in rows if r["status"] != "ok"]
        for r in cut:
            y = r.get("extrapolated_seconds") if key == "train_seconds_mean" else r.get(key)
            if y:
                ax.plot(r["edges"], y * scale, marker, mfc="none", color=color, ms=9)
                ax.annotate(r["status"].split(" (")[0] + (" (extrapolated)" if key == "train_seconds_mean" else ""),
                            (r["edges"], y * scale), fontsize=7, xytext=(4, -10), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("undirected edges (CSBM, avg degree 10)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path, exponents

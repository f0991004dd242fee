"""The PNG plots that runs log to MLflow: drawn on bare Agg figures (no pyplot state, so any
thread or worker process can draw), sized to be read in the MLflow artifact viewer."""

from __future__ import annotations

import math
from pathlib import Path

DPI = 110
MAX_POINTS = 400  # per line: more only thickens the line
LEGEND = 1.5  # inches right of the plots for the legend


def figure(width: float, height: float, *, left: float = 0.8, right: float = 0.2, bottom: float = 0.55,
           top: float = 0.4, wspace: float = 0.25, hspace: float = 0.5):
    """A bare Agg figure with fixed margins (inches): no layout pass when saving, which would cost
    more than the drawing (about 0.1 s a plot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        wspace=wspace, hspace=hspace)
    return fig


def pass_colors(count: int) -> list:
    """``count`` colours, one per pass, in pass order: tab10 up to 10 passes, else evenly spaced
    along a perceptually ordered map (so pass 11 never repeats pass 1's colour)."""
    from matplotlib import colormaps

    if count <= 10:
        return [colormaps["tab10"](i) for i in range(count)]
    return [colormaps["viridis"](0.9 * i / (count - 1)) for i in range(count)]  # 0.9: no pale yellow


def spans_decades(values: list[float]) -> bool:
    """True when positive ``values`` span more than a factor of 10 (a log axis shows them better)."""
    low, high = min(values), max(values)
    return low > 0 and high / low > 10


def save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    return path


def loss_figure(steps: list[dict]):
    """One panel per module: the loss of every SGD step, one colour per pass (BT dashed, FT solid);
    log scale where a panel's losses span decades; markers on lines of a few points."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    modules = sorted({s["module"] for s in steps})
    passes = sorted({s["pass_index"] for s in steps})
    colors = dict(zip(passes, pass_colors(len(passes))))
    columns = min(len(modules), 2)
    rows = math.ceil(len(modules) / columns)
    fig = figure(5.5 * columns + LEGEND, 3.6 * rows, right=LEGEND)
    axes = fig.subplots(rows, columns, squeeze=False).flatten()
    for ax, module in zip(axes, modules):
        mine = [s for s in steps if s["module"] == module]
        for s in mine:
            losses = s["losses"]
            every = max(1, math.ceil(len(losses) / MAX_POINTS))
            ax.plot(range(1, len(losses) + 1, every), losses[::every], color=colors[s["pass_index"]],
                    linestyle="--" if s["direction"] == "backward" else "-", linewidth=1.2,
                    marker="o" if len(losses) < 5 else None)
        if spans_decades([v for s in mine for v in s["losses"]]):
            ax.set_yscale("log")
            # plain numbers (0.2, 1, 50), at 1, 2 and 5 times each power of ten: 2×10⁻¹ reads slowly
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:e}"[0] in "25" else ""))
        ax.set_title(f"module {module + 1}")
        ax.set_xlabel("SGD step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
    for ax in axes[len(modules):]:
        ax.set_visible(False)
    styles = [Line2D([], [], color="black", label="forward (FT)"),
              Line2D([], [], color="black", linestyle="--", label="backward (BT)")]
    if len(passes) <= 10:
        styles += [Line2D([], [], color=colors[p], linewidth=3, label=f"pass {p}") for p in passes]
    else:
        _pass_colorbar(fig, axes[: len(modules)], passes)
    fig.legend(handles=styles, loc="upper right", fontsize=8, frameon=False)
    return fig


def _pass_colorbar(fig, axes, passes: list[int]) -> None:
    """A colour bar from the first pass to the last: a legend of 11+ passes would be a wall."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import ListedColormap, Normalize

    scale = ScalarMappable(Normalize(passes[0] - 0.5, passes[-1] + 0.5), ListedColormap(pass_colors(len(passes))))
    fig.colorbar(scale, ax=list(axes), label="pass", fraction=0.03, aspect=40)


def pass_figure(passes: list[dict]):
    """The metrics after each forward pass: scores (accuracies, F1, NMI, ...) on one axis, losses
    on another; the selected pass marked. Needs two passes or more (one is no curve)."""
    keys = list(passes[0]["metrics"])
    groups = [("score", [k for k in keys if "loss" not in k]), ("loss", [k for k in keys if "loss" in k])]
    groups = [(label, names) for label, names in groups if names]
    fig = figure(5.5 + LEGEND, 2.6 * len(groups) + 0.6, right=LEGEND, hspace=0.15)
    axes = fig.subplots(len(groups), 1, sharex=True, squeeze=False)[:, 0]
    xs = [p["pass_index"] for p in passes]
    best = [p["pass_index"] for p in passes if p.get("is_best_final")]
    for ax, (label, names) in zip(axes, groups):
        for key in names:
            ax.plot(xs, [p["metrics"][key] for p in passes], marker="o", markersize=4, label=key)
        for x in best:
            ax.axvline(x, color="grey", linestyle=":", label="selected pass")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    axes[-1].set_xlabel("forward pass")
    axes[-1].set_xticks(xs if len(xs) <= 20 else xs[:: math.ceil(len(xs) / 20)])
    return fig

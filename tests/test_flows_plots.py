"""The plots a pipeline run logs, drawn from the step records of a real (small) training run."""

from __future__ import annotations

from flows_conftest import TINY  # tests/ is on sys.path


def _records(bp_count: int, steps: int = 20) -> tuple[list[dict], list[dict]]:
    """Step records (as the report reads them) and pass results of a CSBM run, ``bp_count`` rounds."""
    from dataclasses import asdict

    from dgnn.config import TrainConfig
    from dgnn.data.synthetic import csbm
    from dgnn.trainer import DecoupledTrainer

    modules = [{**m, "steps": steps} for m in TINY["train"]["modules"]]
    config = TrainConfig.model_validate({**TINY["train"], "feature_norm": "none", "bp_count": bp_count,
                                         "modules": modules})
    fit = DecoupledTrainer(csbm(300, num_classes=3, avg_degree=6, num_features=16, seed=0), config, seed=0).fit()
    records = [{"module": r.step.module, "pass_index": r.step.pass_index, "direction": r.step.direction,
                "name": r.step.name, "losses": r.losses} for r in fit.steps]
    return records, [asdict(p) | {"is_best_final": p.pass_index == fit.best_pass} for p in fit.passes]


def test_loss_curves_one_colour_per_pass_beyond_ten_and_log_scale_over_decades(tmp_path):
    from matplotlib.image import imread

    from adapters.mlflow import plots

    records, _ = _records(bp_count=11)  # passes 0..11: more than tab10 has colours
    fig = plots.loss_figure(records)
    module_1 = fig.axes[0]  # BT losses pull module 1 towards E_2: far above its own FT loss
    losses = [v for r in records if r["module"] == 0 for v in r["losses"]]
    assert plots.spans_decades(losses) and module_1.get_yscale() == "log"
    colors = {line.get_color() if isinstance(line.get_color(), str) else tuple(line.get_color())
              for line in module_1.get_lines()}
    assert len(colors) == 12
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)
    image = imread(plots.save(fig, tmp_path / "loss_curves.png"))
    assert image.shape[1] >= 1200  # two panels of 5.5 inches at 110 dpi, and the legend


def test_short_lines_have_markers_and_scores_and_losses_get_their_own_axes():
    from adapters.mlflow import plots

    records, passes = _records(bp_count=1, steps=3)
    assert all(line.get_marker() == "o" for ax in plots.loss_figure(records).axes for line in ax.get_lines())
    scores, losses = plots.pass_figure(passes).axes
    assert {line.get_label() for line in losses.get_lines()} == {"val_loss", "selected pass"}
    assert {line.get_label() for line in scores.get_lines()} == {"train_acc", "val_acc", "test_acc", "macro_f1",
                                                                 "val_macro_f1", "val_roc_auc", "roc_auc",
                                                                 "selected pass"}
    assert not plots.spans_decades([0.5, 2.0]) and not plots.spans_decades([0.0, 3.0])

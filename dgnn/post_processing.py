"""Post-processing of the selected pass of a :class:`~dgnn.trainer.DecoupledTrainer` (a base class:
the trainer holds the state): Correct and Smooth of a classifier's probabilities
(:mod:`dgnn.nn.correct_smooth`, weights chosen on validation) or the self-training refinement of a
clustering (:mod:`dgnn.cluster_refine`, kept only where modularity rises; no label read)."""

from __future__ import annotations

import torch

from dgnn.cluster_refine import refine
from dgnn.config import ModuleConfig
from dgnn.evaluation import classification_scores, criterion_name, partition_scores
from dgnn.nn.correct_smooth import best_on_validation


class PostProcessing:
    def post_process(self) -> dict | None:
        """The config's post-processing of the selected pass, once: Correct and Smooth of a
        classifier's probabilities, or the self-training refinement of a clustering. The selected
        pass's prediction and metrics become the post-processed ones and the ones before stay as
        ``pre_post_<metric>``. Returns what was chosen, with the selection criterion before and
        after (None when the config has neither, or it ran already)."""
        if self.best is None or "post" in self.best:
            return None
        if self.config.correct_smooth is not None:
            post, metrics, prediction, proba = self._correct_and_smooth()
        elif self.config.cluster_refine is not None:
            post, metrics, prediction, proba = self._refine_clusters()
        else:
            return None
        name = criterion_name(self.config)
        before = self.best["metrics"]
        post |= {"criterion": name, "before": before[name], "after": metrics[name]}
        self.best |= {"metrics": metrics | {f"pre_post_{k}": v for k, v in before.items()},
                      "prediction": prediction, "proba": proba, "post": post}
        return post

    @torch.no_grad()
    def _correct_and_smooth(self) -> tuple[dict, dict, torch.Tensor, torch.Tensor]:
        """Every (correct α, smooth α) of the config's grids tried, the best validation score kept
        (ties: the first pair, so no post-processing unless it scores higher)."""
        rule = self.config.correct_smooth
        spec = ModuleConfig(width=1, order=1)
        val = self.val_idx
        ca, sa, out = best_on_validation(
            lambda z: self.store.filtered(z, spec), self.best["proba"].to(self.device),
            self.train_idx, self.labels[self.train_idx], rule.correct_alphas, rule.smooth_alphas, rule.layers,
            lambda z: self._select(z[val], z[val].argmax(1), val))
        metrics = classification_scores(self.labels, out, out.argmax(1), self.split)
        metrics["val_loss"] = self.best["metrics"]["val_loss"]
        post = {"kind": "correct-and-smooth", "correct_alpha": ca, "smooth_alpha": sa}
        return post, metrics, out.argmax(1).cpu(), out.cpu()

    def _refine_clusters(self) -> tuple[dict, dict, torch.Tensor, None]:
        """The refined partition where its modularity is higher, else the k-means one (no label read)."""
        rule = self.config.cluster_refine
        spec = ModuleConfig(width=1, order=rule.order, filter="average")
        embedding = self.store.load(self.best["output"]).float().cpu()
        refined = refine(embedding, self.best["prediction"].long(), self.graph.num_classes,
                         lambda h: self.store.filtered(h, spec).cpu(), rule, self.generator)
        metrics = partition_scores(refined, self.graph.edge_index, self.graph.y)
        kept = metrics["modularity"] > self.best["metrics"]["modularity"]
        if not kept:
            metrics, refined = self.best["metrics"], self.best["prediction"]
        return {"kind": "refine-clusters", "kept": kept}, metrics, refined, None

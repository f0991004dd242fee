"""The classification peers: their models, search spaces and example settings (the first trial).

Each space varies what the method's authors or PyG's example for it vary: optimiser (lr, weight
decay), width, dropout, depth, and the method's own propagation knobs (K, alpha, theta; C&S's
two propagations). The graph models (GCN, GraphSAGE, APPNP, GCNII) run the whole graph every
forward; the precomputed ones (SGC, SSGC, SIGN) and the MLP touch only the rows they are asked
for. Every model reads the normalised adjacency of ``PeerData.gcn_adj`` (GraphSAGE: the binary
one, mean aggregation); label propagation and C&S use PyG's own D^-1/2 A D^-1/2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmarks.methods import SIGN
from benchmarks.peers.data import PeerData
from benchmarks.peers.loop import Limits, fit_classifier
from benchmarks.peers.search import Outcome, Peer
from dgnn.metrics import accuracy

# The optimiser and regulariser ranges every trained peer shares (PyG's examples sit inside them).
LR = (1e-3, 5e-2)
WEIGHT_DECAY = (1e-6, 1e-2)
DROPOUT = (0.0, 0.8)
PYG_EXAMPLE = {"dropout": 0.5, "lr": 0.01, "weight_decay": 5e-4}


def _optimiser(trial, lr=LR, weight_decay=WEIGHT_DECAY) -> dict:
    return {"lr": trial.suggest_float("lr", *lr, log=True),
            "weight_decay": trial.suggest_float("weight_decay", *weight_decay, log=True)}


def _width_depth(trial, widths=(16, 32, 64, 128, 256), layers=(2, 3)) -> dict:
    return {"hidden": trial.suggest_categorical("hidden", list(widths)),
            "layers": trial.suggest_int("layers", *layers),
            "dropout": trial.suggest_float("dropout", *DROPOUT)}


class Stack(torch.nn.Module):
    """dropout -> layer -> ReLU per layer, the last without ReLU (Kipf & Welling's GCN shape);
    graph layers take the adjacency after the features, linear ones nothing."""

    def __init__(self, layers: list[torch.nn.Module], dropout: float):
        super().__init__()
        self.layers, self.dropout = torch.nn.ModuleList(layers), dropout

    def forward(self, x, *graph):
        for i, layer in enumerate(self.layers):
            x = layer(F.dropout(x, self.dropout, self.training), *graph)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


def _dims(data: PeerData, params: dict) -> list[tuple[int, int]]:
    sizes = [data.x.shape[1]] + [params["hidden"]] * (params["layers"] - 1) + [data.num_classes]
    return list(zip(sizes, sizes[1:]))


def _graph_logits(module, data: PeerData, *inputs):
    return lambda split: module(*inputs) if split == "all" else module(*inputs)[data.rows[split]]


def _row_logits(module, data: PeerData, features):
    """Logits of a row-local model; the training and validation rows are sliced once."""

    def take(split):
        idx = slice(None) if split == "all" else data.rows[split]
        return [f[idx] for f in features] if isinstance(features, list) else features[idx]

    sliced = {s: take(s) for s in ("train", "val")}
    return lambda split: module(sliced[split] if split in sliced else take(split))


def _trained(build):
    """A peer's run from ``build(data, params, limits) -> (module, logits, groups or None)``."""

    def run(data: PeerData, params: dict, seed: int, limits: Limits) -> Outcome:
        torch.manual_seed(seed)
        module, logits, groups = build(data, params, limits)
        result = fit_classifier(module, logits, data, params, limits, groups)
        return Outcome(result.score, lambda: logits("test").argmax(1), result.cut, result.epochs,
                       {"best_epoch": result.best_epoch})

    return run


def _gcn(data, params, limits):
    from torch_geometric.nn import GCNConv

    module = Stack([GCNConv(a, b, normalize=False) for a, b in _dims(data, params)], params["dropout"])
    # weight decay on every layer but the output one, as Kipf & Welling (and PyG's example) do
    groups = [{"params": list(module.layers[:-1].parameters()), "weight_decay": params["weight_decay"]},
              {"params": list(module.layers[-1].parameters()), "weight_decay": 0.0}]
    return module, _graph_logits(module, data, data.x, data.gcn_adj()), groups


def _sage(data, params, limits):
    from torch_geometric.nn import SAGEConv

    module = Stack([SAGEConv(a, b, aggr="mean") for a, b in _dims(data, params)], params["dropout"])
    return module, _graph_logits(module, data, data.x, data.adj), None


def _mlp(data, params, limits):
    module = Stack([torch.nn.Linear(a, b) for a, b in _dims(data, params)], params["dropout"])
    return module, _row_logits(module, data, data.x), None


class APPNPNet(torch.nn.Module):
    """PyG's APPNP example: a 2-layer MLP whose logits are then propagated K times."""

    def __init__(self, in_dim, hidden, out_dim, hops, alpha, dropout):
        super().__init__()
        from torch_geometric.nn import APPNP

        self.mlp = Stack([torch.nn.Linear(in_dim, hidden), torch.nn.Linear(hidden, out_dim)], dropout)
        self.prop = APPNP(hops, alpha, normalize=False)

    def forward(self, x, adj):
        return self.prop(self.mlp(x), adj)


def _appnp(data, params, limits):
    module = APPNPNet(data.x.shape[1], params["hidden"], data.num_classes, params["K"], params["alpha"],
                      params["dropout"])
    return module, _graph_logits(module, data, data.x, data.gcn_adj()), None


class GCNII(torch.nn.Module):
    """Chen et al.'s GCNII as in PyG's ``gcn2_cora`` example: linear in, L GCN2Conv layers with
    initial residual (alpha) and identity mapping (theta), linear out."""

    def __init__(self, in_dim, hidden, out_dim, layers, alpha, theta, dropout):
        super().__init__()
        from torch_geometric.nn import GCN2Conv

        self.lins = torch.nn.ModuleList([torch.nn.Linear(in_dim, hidden), torch.nn.Linear(hidden, out_dim)])
        self.convs = torch.nn.ModuleList(GCN2Conv(hidden, alpha, theta, layer + 1, shared_weights=True,
                                                  normalize=False) for layer in range(layers))
        self.dropout = dropout

    def forward(self, x, adj):
        x = x0 = F.relu(self.lins[0](F.dropout(x, self.dropout, self.training)))
        for conv in self.convs:
            x = F.relu(conv(F.dropout(x, self.dropout, self.training), x0, adj))
        return self.lins[1](F.dropout(x, self.dropout, self.training))


def _gcnii(data, params, limits):
    module = GCNII(data.x.shape[1], params["hidden"], data.num_classes, params["layers"], params["alpha"],
                   params["theta"], params["dropout"])
    groups = [{"params": list(module.convs.parameters()), "weight_decay": params["wd_conv"]},
              {"params": list(module.lins.parameters()), "weight_decay": params["wd_lin"]}]
    return module, _graph_logits(module, data, data.x, data.gcn_adj()), groups


def _sgc(data, params, limits):
    """SGConv's computation, Linear(Â^K X), with Â^K X from the method's cache."""
    module = torch.nn.Linear(data.x.shape[1], data.num_classes)
    power, _ = data.smoother().at(params["K"], limits.on_hop)
    return module, _row_logits(module, data, power), None


def _ssgc(data, params, limits):
    """SSGConv's computation, Linear(alpha X + (1 - alpha) / K (ÂX + ... + Â^K X))."""
    module = torch.nn.Linear(data.x.shape[1], data.num_classes)
    _, total = data.smoother().at(params["K"], limits.on_hop)
    smoothed = params["alpha"] * data.x + (1 - params["alpha"]) / params["K"] * total
    return module, _row_logits(module, data, smoothed), None


def _sign(data, params, limits):
    module = SIGN(data.x.shape[1], params["hidden"], data.num_classes, params["K"], params["dropout"])
    return module, _row_logits(module, data, data.smoother().powers(params["K"], limits.on_hop)), None


def _train_onehot(data: PeerData) -> torch.Tensor:
    y = torch.zeros(data.x.shape[0], data.num_classes)
    y[data.rows["train"]] = F.one_hot(data.labels("train"), data.num_classes).float()
    return y


def _val_outcome(out: torch.Tensor, data: PeerData, **kw) -> Outcome:
    return Outcome(accuracy(out[data.rows["val"]].argmax(1), data.labels("val")),
                   lambda: out[data.rows["test"]].argmax(1), **kw)


def _run_lp(data: PeerData, params: dict, seed: int, limits: Limits) -> Outcome:
    """Zhu & Ghahramani's label propagation of the training labels (PyG LabelPropagation)."""
    from torch_geometric.nn import LabelPropagation

    out = LabelPropagation(params["num_layers"], params["alpha"])(_train_onehot(data), data.adj,
                                                                  mask=data.rows["train"])
    return _val_outcome(out, data)


def _run_cs(data: PeerData, params: dict, seed: int, limits: Limits) -> Outcome:
    """Huang et al.'s Correct and Smooth over the MLP's probabilities (PyG CorrectAndSmooth).
    Only training labels are corrected towards and spread: validation labels choose the config,
    so they cannot also be inputs. No pruner: the MLP's validation curve does not rank C&S's."""
    from torch_geometric.nn import CorrectAndSmooth

    torch.manual_seed(seed)
    module, logits, _ = _mlp(data, params, limits)
    result = fit_classifier(module, logits, data, params, limits.quiet())
    with torch.no_grad():
        soft = logits("all").softmax(1)
    cs = CorrectAndSmooth(params["correction_layers"], params["correction_alpha"], params["smoothing_layers"],
                          params["smoothing_alpha"], autoscale=params["autoscale"], scale=params.get("scale", 1.0))
    train, y_train = data.rows["train"], data.labels("train")
    out = cs.smooth(cs.correct(soft, y_train, train, data.adj), y_train, train, data.adj)
    return _val_outcome(out, data, cut=result.cut, epochs=result.epochs, info={"mlp_val": result.score})


# -- search spaces -----------------------------------------------------------------------------


def _space_gcn(trial) -> dict:
    return _width_depth(trial) | _optimiser(trial)


def _space_mlp(trial) -> dict:
    return _width_depth(trial, widths=(64, 128, 256, 512)) | _optimiser(trial)


def _space_appnp(trial) -> dict:
    return {"hidden": trial.suggest_categorical("hidden", [64, 128, 256]),
            "K": trial.suggest_int("K", 2, 20), "alpha": trial.suggest_float("alpha", 0.05, 0.3),
            "dropout": trial.suggest_float("dropout", *DROPOUT)} | _optimiser(trial)


def _space_gcnii(trial) -> dict:
    # GCNII's authors vary depth, alpha, lambda (theta here), dropout and the two weight decays
    return {"layers": trial.suggest_categorical("layers", [4, 8, 16, 32, 64]),
            "hidden": trial.suggest_categorical("hidden", [64, 128, 256]),
            "alpha": trial.suggest_float("alpha", 0.05, 0.3), "theta": trial.suggest_float("theta", 0.3, 1.5),
            "dropout": trial.suggest_float("dropout", *DROPOUT), "lr": trial.suggest_float("lr", *LR, log=True),
            "wd_conv": trial.suggest_float("wd_conv", 1e-4, 5e-2, log=True),
            "wd_lin": trial.suggest_float("wd_lin", 1e-6, 1e-3, log=True)}


def _space_sgc(trial) -> dict:
    # a linear model: no width or dropout; SGC's authors tune weight decay, its lr is large
    return {"K": trial.suggest_int("K", 1, 5)} | _optimiser(trial, lr=(1e-3, 0.5), weight_decay=(1e-7, 1e-1))


def _space_ssgc(trial) -> dict:
    return ({"K": trial.suggest_int("K", 2, 32), "alpha": trial.suggest_float("alpha", 0.0, 0.3)}
            | _optimiser(trial, lr=(1e-3, 0.5), weight_decay=(1e-7, 1e-1)))


def _space_sign(trial) -> dict:
    return {"K": trial.suggest_int("K", 1, 4), "hidden": trial.suggest_categorical("hidden", [64, 128, 256, 512]),
            "dropout": trial.suggest_float("dropout", *DROPOUT)} | _optimiser(trial)


def _space_lp(trial) -> dict:
    return {"num_layers": trial.suggest_int("num_layers", 1, 100), "alpha": trial.suggest_float("alpha", 0.5, 0.999)}


def _space_cs(trial) -> dict:
    params = _space_mlp(trial) | {
        "correction_layers": trial.suggest_int("correction_layers", 1, 50),
        "correction_alpha": trial.suggest_float("correction_alpha", 0.0, 1.0),
        "smoothing_layers": trial.suggest_int("smoothing_layers", 1, 50),
        "smoothing_alpha": trial.suggest_float("smoothing_alpha", 0.0, 1.0),
        "autoscale": trial.suggest_categorical("autoscale", [True, False])}
    if not params["autoscale"]:
        params["scale"] = trial.suggest_float("scale", 0.5, 30.0, log=True)
    return params


MLP_EXAMPLE = {"hidden": 64, "layers": 2} | PYG_EXAMPLE
PEERS = {p.name: p for p in [
    Peer("gcn", "GCN", _space_gcn, _trained(_gcn), {"hidden": 16, "layers": 2} | PYG_EXAMPLE),
    Peer("sage", "GraphSAGE", _space_gcn, _trained(_sage), {"hidden": 64, "layers": 2} | PYG_EXAMPLE),
    Peer("appnp", "APPNP", _space_appnp, _trained(_appnp), {"hidden": 64, "K": 10, "alpha": 0.1} | PYG_EXAMPLE),
    Peer("gcnii", "GCNII", _space_gcnii, _trained(_gcnii),
         {"layers": 64, "hidden": 64, "alpha": 0.1, "theta": 0.5, "dropout": 0.6, "lr": 0.01, "wd_conv": 0.01,
          "wd_lin": 5e-4}),
    Peer("sgc", "SGC", _space_sgc, _trained(_sgc), {"K": 2, "lr": 0.2, "weight_decay": 5e-3}),
    # SSGC's Cora settings (K 16, alpha 0.05) with SGC's example optimiser (PyG has no SSGC example)
    Peer("ssgc", "SSGC", _space_ssgc, _trained(_ssgc), {"K": 16, "alpha": 0.05, "lr": 0.2, "weight_decay": 5e-3}),
    Peer("sign", "SIGN", _space_sign, _trained(_sign), {"K": 2, "hidden": 64} | PYG_EXAMPLE),
    Peer("mlp", "MLP", _space_mlp, _trained(_mlp), MLP_EXAMPLE),
    Peer("cs", "C&S (MLP)", _space_cs, _run_cs,
         MLP_EXAMPLE | {"correction_layers": 50, "correction_alpha": 1.0, "smoothing_layers": 50,
                        "smoothing_alpha": 0.8, "autoscale": False, "scale": 20.0}),
    Peer("lp", "Label prop.", _space_lp, _run_lp, {"num_layers": 3, "alpha": 0.9}),
]}

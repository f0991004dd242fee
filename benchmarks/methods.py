"""The methods compared, each trained once per seed on a graph already in memory.

Every ``train_<method>`` returns one row per seed with the same keys (see :class:`SeedResult`).
The clock starts with the graph in memory as loaded from ``data/`` (raw features, symmetric
``edge_index``) and stops when the selected model exists; it covers feature normalisation,
adjacency normalisation, any propagation precomputation, all training steps and every
evaluation used for model selection. Model selection is by validation accuracy everywhere; the
reported test accuracy is that of the selected epoch / pass.

``progress`` is called with a small dict after every epoch (peers) or module step (DGNN) so the
parent can say how far a run got when it has to stop it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from dgnn.metrics import accuracy, macro_f1
from dgnn.propagation import normalise_features

Progress = Callable[[dict], None]


@dataclass
class SeedResult:
    seed: int
    test_acc: float
    val_acc: float
    macro_f1: float
    train_seconds: float  # whole timed region, see the module docstring
    time_to_best_val: float  # from the start of the clock to the end of the selected epoch / pass
    train_seconds_excl_eval: float | None  # the same minus per-epoch evaluation (peers only)
    best_epoch: int  # epoch (peers) or forward pass (DGNN) that was selected
    epochs_run: int
    stopped_early: str | None = None  # "time budget" when a budget cut the run short

    def to_dict(self) -> dict:
        return asdict(self)


def _scores(pred: torch.Tensor, graph) -> tuple[float, float, float]:
    y = graph.y
    return (accuracy(pred[graph.test_mask], y[graph.test_mask]),
            accuracy(pred[graph.val_mask], y[graph.val_mask]),
            macro_f1(pred[graph.test_mask], y[graph.test_mask]))


# -- DGNN ------------------------------------------------------------------------------------


def train_dgnn(graph, seed: int, *, config, progress: Progress, budget_s: float | None = None,
               **_) -> SeedResult:
    """DGNN with ``config`` (a TrainConfig); the clock includes the trainer's construction
    (feature and adjacency normalisation) and ``fit`` (propagations, SGD, per-pass evaluation)."""
    from dgnn.trainer import DecoupledTrainer

    start = time.perf_counter()
    trainer = DecoupledTrainer(graph, config, seed=seed, device="cpu")
    pass_times: dict[int, float] = {}

    def on_step(r) -> None:
        progress({"step": r.step.name, "steps_run": r.steps_run, "t": time.perf_counter() - start})

    def on_pass(p) -> None:
        pass_times[p.pass_index] = time.perf_counter() - start
        progress({"pass": p.pass_index, "val_acc": p.metrics.get("val_acc"), "t": pass_times[p.pass_index]})

    result = trainer.fit(on_step=on_step, on_pass=on_pass)
    total = time.perf_counter() - start
    m = result.metrics
    return SeedResult(seed, m["test_acc"], m["val_acc"], m["macro_f1"], total,
                      pass_times[result.best_pass], None, result.best_pass, len(result.passes))


# -- full-batch peers ------------------------------------------------------------------------


def _csr_adjacency(graph):
    """Binary adjacency as torch sparse CSR via PyG's ``ToSparseTensor`` (STACK.md: no torch-sparse)."""
    import torch_geometric.transforms as T
    from torch_geometric.data import Data

    data = Data(edge_index=graph.edge_index, num_nodes=graph.num_nodes)
    return T.ToSparseTensor(layout=torch.sparse_csr)(data).adj_t


class GCN(torch.nn.Module):
    """Kipf & Welling's 2-layer GCN as in PyG's ``examples/gcn.py`` (hidden 16, dropout 0.5)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__()
        from torch_geometric.nn import GCNConv

        self.conv1 = GCNConv(in_dim, hidden, cached=True)
        self.conv2 = GCNConv(hidden, out_dim, cached=True)

    def forward(self, x, adj):
        x = F.dropout(x, p=0.5, training=self.training)
        x = F.relu(self.conv1(x, adj))
        x = F.dropout(x, p=0.5, training=self.training)
        return self.conv2(x, adj)


class SGC(torch.nn.Module):
    """Wu et al.'s SGC as in PyG's ``examples/sgc.py``: ``SGConv(K=2, cached=True)``."""

    def __init__(self, in_dim: int, out_dim: int, hops: int = 2):
        super().__init__()
        from torch_geometric.nn import SGConv

        self.conv = SGConv(in_dim, out_dim, K=hops, cached=True)

    def forward(self, x, adj):
        return self.conv(x, adj)


def _full_batch(graph, seed: int, model_fn, optimizer_fn, epochs: int, feature_norm: str,
                progress: Progress, budget_s: float | None) -> SeedResult:
    """Full-batch training, evaluating on all nodes after every epoch (PyG's examples do the same)."""
    torch.manual_seed(seed)
    start = time.perf_counter()
    x = normalise_features(graph.x.float(), feature_norm)
    adj = _csr_adjacency(graph)  # normalised by the convolution on its first call (cached)
    model = model_fn()
    optimizer = optimizer_fn(model)
    train_mask, y = graph.train_mask, graph.y
    best = {"val": -1.0, "epoch": 0, "pred": None, "t": 0.0}
    eval_seconds, epoch, stopped = 0.0, 0, None
    for epoch in range(1, epochs + 1):
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x, adj)[train_mask], y[train_mask])
        loss.backward()
        optimizer.step()
        eval_start = time.perf_counter()
        model.eval()
        with torch.no_grad():
            pred = model(x, adj).argmax(1)
        val = accuracy(pred[graph.val_mask], y[graph.val_mask])
        now = time.perf_counter()
        eval_seconds += now - eval_start
        if val > best["val"]:
            best = {"val": val, "epoch": epoch, "pred": pred, "t": now - start}
        progress({"epoch": epoch, "loss": float(loss), "val_acc": val, "t": now - start})
        if budget_s is not None and now - start > budget_s and epoch < epochs:
            stopped = "time budget"
            break
    total = time.perf_counter() - start
    test_acc, val_acc, f1 = _scores(best["pred"], graph)
    return SeedResult(seed, test_acc, val_acc, f1, total, best["t"], total - eval_seconds,
                      best["epoch"], epoch, stopped)


def train_gcn(graph, seed: int, *, feature_norm: str, progress: Progress, budget_s=None,
              epochs: int = 200, hidden: int = 16, **_) -> SeedResult:
    """PyG GCNConv x 2, hidden 16 (or ``hidden``), Adam lr 0.01, weight decay 5e-4 on the first
    layer, 200 epochs."""

    def optimizer(model):
        return torch.optim.Adam([dict(params=model.conv1.parameters(), weight_decay=5e-4),
                                 dict(params=model.conv2.parameters(), weight_decay=0.0)], lr=0.01)

    return _full_batch(graph, seed, lambda: GCN(graph.num_features, hidden, graph.num_classes),
                       optimizer, epochs, feature_norm, progress, budget_s)


def train_mlp(graph, seed: int, *, feature_norm: str, progress: Progress, budget_s=None,
              epochs: int = 200, hidden: int = 64, **_) -> SeedResult:
    """A 2-layer MLP on the features alone (hidden 64, ReLU, dropout 0.5 on input and hidden,
    Adam lr 0.01, weight decay 5e-4, 200 epochs): trains on the training rows, selects the epoch
    on the validation rows, and predicts the test rows once (no graph, so no other row is needed)."""
    torch.manual_seed(seed)
    start = time.perf_counter()
    x = normalise_features(graph.x.float(), feature_norm)
    rows = {k: getattr(graph, f"{k}_mask").nonzero().flatten() for k in ("train", "val", "test")}
    xs = {k: x[v] for k, v in rows.items()}
    ys = {k: graph.y[v] for k, v in rows.items()}
    model = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.Linear(graph.num_features, hidden),
                                torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(hidden, graph.num_classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    best = {"val": -1.0, "epoch": 0, "state": None, "t": 0.0}
    epoch, stopped = 0, None
    for epoch in range(1, epochs + 1):
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xs["train"]), ys["train"])
        loss.backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            val = accuracy(model(xs["val"]).argmax(1), ys["val"])
        now = time.perf_counter()
        if val > best["val"]:
            best = {"val": val, "epoch": epoch, "t": now - start,
                    "state": {k: v.clone() for k, v in model.state_dict().items()}}
        progress({"epoch": epoch, "loss": float(loss.detach()), "val_acc": val, "t": now - start})
        if budget_s is not None and now - start > budget_s and epoch < epochs:
            stopped = "time budget"
            break
    model.load_state_dict(best["state"])
    model.eval()
    with torch.no_grad():
        pred = model(xs["test"]).argmax(1)
    total = time.perf_counter() - start
    return SeedResult(seed, accuracy(pred, ys["test"]), best["val"], macro_f1(pred, ys["test"]), total,
                      best["t"], None, best["epoch"], epoch, stopped)


def train_sgc(graph, seed: int, *, feature_norm: str, progress: Progress, budget_s=None,
              epochs: int = 100, **_) -> SeedResult:
    """PyG SGConv (K = 2), Adam lr 0.2, weight decay 5e-3, 100 epochs (PyG's example settings)."""
    return _full_batch(graph, seed, lambda: SGC(graph.num_features, graph.num_classes),
                       lambda m: torch.optim.Adam(m.parameters(), lr=0.2, weight_decay=5e-3),
                       epochs, feature_norm, progress, budget_s)


# -- SIGN ------------------------------------------------------------------------------------


class SIGN(torch.nn.Module):
    """Rossi et al.'s SIGN: one linear map per hop [X, ÂX, ..., Â^K X], concatenated, then a classifier."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, hops: int, dropout: float):
        super().__init__()
        self.branches = torch.nn.ModuleList(torch.nn.Linear(in_dim, hidden) for _ in range(hops + 1))
        self.out = torch.nn.Linear(hidden * (hops + 1), out_dim)
        self.dropout = dropout

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        hs = [branch(F.dropout(x, self.dropout, self.training)) for branch, x in zip(self.branches, xs)]
        h = F.dropout(F.relu(torch.cat(hs, dim=1)), self.dropout, self.training)
        return self.out(h)


def train_sign(graph, seed: int, *, feature_norm: str, progress: Progress, budget_s=None,
               epochs: int = 200, hops: int = 2, hidden: int = 64, **_) -> SeedResult:
    """SIGN (K = 2, hidden 64, dropout 0.5, Adam lr 0.01, weight decay 5e-4, 200 epochs).

    Precomputes Â^k X once with PyG's ``gcn_norm`` on a CSR adjacency (inside the clock); then
    trains on the labelled training rows only and evaluates the validation rows every epoch
    (its test rows once, at the end, for the selected epoch) - it never touches the graph again.
    """
    from torch_geometric.nn.conv.gcn_conv import gcn_norm

    torch.manual_seed(seed)
    start = time.perf_counter()
    x = normalise_features(graph.x.float(), feature_norm)
    adj, _ = gcn_norm(_csr_adjacency(graph))
    xs = [x]
    for _ in range(hops):
        xs.append(adj @ xs[-1])
    train_idx = graph.train_mask.nonzero().flatten()
    val_idx = graph.val_mask.nonzero().flatten()
    test_idx = graph.test_mask.nonzero().flatten()
    keep = torch.cat([train_idx, val_idx, test_idx])
    xs = [h[keep] for h in xs]  # only labelled rows are ever needed again
    n_train, n_val = len(train_idx), len(val_idx)
    y_train, y_val = graph.y[train_idx], graph.y[val_idx]
    model = SIGN(graph.num_features, hidden, graph.num_classes, hops, dropout=0.5)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    best = {"val": -1.0, "epoch": 0, "state": None, "t": 0.0}
    eval_seconds, epoch, stopped = 0.0, 0, None
    for epoch in range(1, epochs + 1):
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model([h[:n_train] for h in xs]), y_train)
        loss.backward()
        optimizer.step()
        eval_start = time.perf_counter()
        model.eval()
        with torch.no_grad():
            val = accuracy(model([h[n_train:n_train + n_val] for h in xs]).argmax(1), y_val)
        if val > best["val"]:
            best = {"val": val, "epoch": epoch, "state": {k: v.clone() for k, v in model.state_dict().items()}}
        now = time.perf_counter()
        eval_seconds += now - eval_start
        if best["epoch"] == epoch:
            best["t"] = now - start
        progress({"epoch": epoch, "loss": float(loss), "val_acc": val, "t": now - start})
        if budget_s is not None and now - start > budget_s and epoch < epochs:
            stopped = "time budget"
            break
    model.load_state_dict(best["state"])
    model.eval()
    with torch.no_grad():
        pred_test = model([h[n_train + n_val:] for h in xs]).argmax(1)
    total = time.perf_counter() - start
    y_test = graph.y[test_idx]
    return SeedResult(seed, accuracy(pred_test, y_test), best["val"], macro_f1(pred_test, y_test),
                      total, best["t"], total - eval_seconds, best["epoch"], epoch, stopped)


METHODS = {"dgnn": train_dgnn, "gcn": train_gcn, "sgc": train_sgc, "sign": train_sign, "mlp": train_mlp}


def warm_up() -> None:
    """Touch the kernels every method uses (sparse CSR matmul, linear layers, Adam, dropout) on a toy
    graph, so that no method pays one-off library initialisation inside its clock."""
    g = torch.Generator().manual_seed(0)
    n = 256
    edge_index = torch.randint(0, n, (2, 2048), generator=g)
    adj = torch.sparse_coo_tensor(edge_index, torch.ones(2048), (n, n)).coalesce().to_sparse_csr()
    x = torch.rand(n, 32, generator=g)
    layer = torch.nn.Linear(32, 8)
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.01)
    for _ in range(3):
        optimizer.zero_grad()
        out = layer(F.dropout(adj @ x, 0.5, True))
        F.cross_entropy(out, torch.zeros(n, dtype=torch.long)).backward()
        optimizer.step()

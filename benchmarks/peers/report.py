"""The markdown tables of ``results/peers_tuned*.md``, rebuilt from the JSONL rows after every dataset."""

from __future__ import annotations

import json
from pathlib import Path

ACCEPT_MARGIN, WORST_GAP = 0.5, 2.0  # points: DGNN >= best tuned peer - 0.5, never more than 2 below


def latest_rows(path: Path) -> dict[tuple[str, str], dict]:
    """The last row per (dataset, method): a rerun after an error appends a new one."""
    rows: dict[tuple[str, str], dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row["dataset"], row["method"]] = row
    return rows


def _cell(row: dict | None, key: str = "test", bold: bool = False) -> str:
    if row is None:
        return "–"
    if "error" in row:
        return "no result"
    text = f"{row[f'{key}_mean'] * 100:.1f} ± {row[f'{key}_std'] * 100:.1f}"
    return f"**{text}**" if bold else text


def _search_cell(row: dict | None) -> str:
    if row is None or "error" in row:
        return "–" if row is None else row["error"]
    trials = row.get("trials") or {}
    shown = "+".join(f"{v} {k}" for k, v in sorted(trials.items()))
    return f"{row['tune_seconds']:.0f} s ({shown})" if trials else f"{row['tune_seconds']:.0f} s"


def classify_table(rows: dict, datasets: list[str], peers: dict[str, str], examples: dict[str, str]) -> list[str]:
    head = ["dataset", "DGNN tuned", "DGNN default", *peers.values(), "best tuned peer", "DGNN − best",
            *examples.values()]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    tally = {"compared": 0, "within": 0, "far": 0}
    for dataset in datasets:
        mine = {m: rows.get((dataset, m)) for m in ("dgnn-tuned", "dgnn-default", *peers, *examples)}
        scored = {m: mine[m]["test_mean"] * 100 for m in peers if mine[m] and "error" not in mine[m]}
        if not any(mine.values()):
            continue
        best = max(scored, key=scored.get) if scored else None
        partial = len(scored) < len(peers)  # a best of some peers is no verdict: shown, not counted
        gap = ""
        if best and mine["dgnn-tuned"] and "error" not in mine["dgnn-tuned"]:
            diff = mine["dgnn-tuned"]["test_mean"] * 100 - scored[best]
            gap = f"{diff:+.1f}"
            if not partial:
                tally["compared"] += 1
                tally["within"] += diff >= -ACCEPT_MARGIN
                tally["far"] += diff < -WORST_GAP
        name = f"{dataset} (partial: {len(scored)} of {len(peers)} tuned peers)" if partial else dataset
        cells = [name, _cell(mine["dgnn-tuned"]), _cell(mine["dgnn-default"]),
                 *(_cell(mine[m], bold=m == best) for m in peers), peers[best] if best else "–", gap,
                 *(_cell(mine[m]) for m in examples)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Acceptance over the {tally['compared']} datasets with DGNN and every tuned peer: "
              f"DGNN tuned ≥ best tuned peer − {ACCEPT_MARGIN} on {tally['within']}; more than {WORST_GAP} "
              f"points below it on {tally['far']} (the target: none)."]
    return lines


def search_table(rows: dict, datasets: list[str], methods: dict[str, str]) -> list[str]:
    lines = ["| dataset | budget s | " + " | ".join(methods.values()) + " |", "|" + "---|" * (len(methods) + 2)]
    for dataset in datasets:
        mine = [rows.get((dataset, m)) for m in methods]
        budgets = {r["budget_seconds"] for r in mine if r}
        if budgets:
            lines.append(f"| {dataset} | {', '.join(f'{b:g}' for b in sorted(budgets))} | "
                         + " | ".join(_search_cell(r) for r in mine) + " |")
    return lines


def cluster_table(rows: dict, datasets: list[str], methods: dict[str, str]) -> list[str]:
    lines = ["| dataset | method | ACC | NMI | ARI | modularity | chosen by | search | chosen |", "|" + "---|" * 9]
    for dataset in datasets:
        mine = {m: rows[dataset, m] for m in methods if (dataset, m) in rows and "error" not in rows[dataset, m]}
        best = max(mine, key=lambda m: mine[m]["acc_mean"]) if mine else None
        for m, row in mine.items():
            chosen = json.dumps(row.get("params", {}), default=str)
            chosen = chosen if len(chosen) <= 90 else chosen[:87] + "..."
            lines.append(f"| {dataset} | {methods[m]} | {_cell(row, 'acc', m == best)} | {_cell(row, 'nmi')} | "
                         f"{_cell(row, 'ari')} | {row['modularity_mean']:.3f} | {row.get('criterion', '–')} | "
                         f"{_search_cell(row)} | `{chosen}` |")
    return lines


def write(path: Path, title: str, intro: str, sections: list[list[str]]) -> None:
    body = [f"# {title}", "", intro, ""]
    for section in sections:
        body += section + [""]
    path.write_text("\n".join(body))

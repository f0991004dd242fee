"""pandera schemas for every table the data layer reads or the pipeline writes, and how to run them.

Validation is lazy: every failure is collected, then :func:`raise_problems` raises one
:class:`DataError` naming the file, the column, the number of failing rows and the first of them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from dgnn.data.errors import DataError

SPLITS = ("train", "val", "test")
FIRST_ROWS = 5

_finite = pa.Check(lambda s: np.isfinite(s.astype(float)), error="must be finite (no NaN or inf)")
_whole = pa.Check(lambda s: s % 1 == 0, error="must be a whole number")
_not_empty = pa.Check(lambda df: len(df) > 0, error="the table has no rows")
_PLAIN = {
    "not_nullable": "must not be empty or NaN",
    "field_uniqueness": "must be unique (repeated values)",
    "greater_than_or_equal_to(0)": "must be >= 0",
    "greater_than_or_equal_to(-1)": "must be >= -1",
    "greater_than(0)": "must be > 0",
}


def edge_index_schema(num_nodes: int) -> pa.DataFrameSchema:
    """Integer edge list (src, dst) of any source, before the self-loop/duplicate policy."""
    in_range = [pa.Check.ge(0), pa.Check.lt(num_nodes, error=f"must be < {num_nodes} (the node count)")]
    return pa.DataFrameSchema({"src": pa.Column("int64", in_range), "dst": pa.Column("int64", in_range)})


def user_edges_schema(node_ids: pd.Index) -> pa.DataFrameSchema:
    """A user's edges file: src, dst (ids from the nodes file), optional positive weight."""
    known = pa.Check(lambda s: s.isin(node_ids), error="is not a node_id of the nodes file")
    weight_checks = [_finite, pa.Check.gt(0)]
    return pa.DataFrameSchema(
        {
            "src": pa.Column(checks=known),
            "dst": pa.Column(checks=known),
            "weight": pa.Column(float, weight_checks, coerce=True, required=False),
        },
        checks=_not_empty,
    )


def user_nodes_schema(feature_columns: list[str], checked: list[str] | None = None) -> pa.DataFrameSchema:
    """A user's nodes file: unique node_id, numeric finite features, optional label and split.

    ``checked``: the feature columns checked one by one (default all of them; pandera takes about
    2 ms a column, so a wide file checks the columns read as finite numbers at once instead)."""
    columns = {
        "node_id": pa.Column(unique=True),
        "label": pa.Column(float, [_whole, pa.Check.ge(0)], nullable=True, coerce=True, required=False),
        "split": pa.Column(checks=pa.Check.isin(SPLITS), nullable=True, required=False),
    }
    columns |= {c: pa.Column(float, _finite, coerce=True) for c in (feature_columns if checked is None else checked)}
    has_features = pa.Check(
        lambda df: len(feature_columns) > 0,
        error="no feature columns (every column but node_id, label and split is a feature)",
    )
    return pa.DataFrameSchema(columns, checks=[_not_empty, has_features])


FEATURE_ROWS = pa.DataFrameSchema(
    {"nonfinite": pa.Column("int64", pa.Check.eq(0, error="row has NaN or inf feature values"))}
)


def labels_schema(num_classes: int) -> pa.DataFrameSchema:
    """Node labels: a class in [0, num_classes) or -1 for unlabelled."""
    in_range = [pa.Check.ge(-1), pa.Check.lt(num_classes, error=f"must be < {num_classes} (classes)")]
    return pa.DataFrameSchema({"label": pa.Column("int64", in_range)})


def _split_has_labels(split: str) -> pa.Check:
    return pa.Check(
        lambda df: not df["labelled"].any() or bool((df[split] & df["labelled"]).any()),
        error=f"the {split} split has no labelled nodes",
    )


SPLIT_MASKS = pa.DataFrameSchema(
    {name: pa.Column(bool) for name in (*SPLITS, "labelled")},
    checks=[
        pa.Check(lambda df: df[list(SPLITS)].sum(axis=1) <= 1, error="node is in more than one split"),
        pa.Check(
            lambda df: ~df[list(SPLITS)].any(axis=1) | df["labelled"],
            error="node is in a split but has no label",
        ),
        *(_split_has_labels(s) for s in SPLITS),
    ],
)

METRICS = pa.DataFrameSchema(
    {
        "metric": pa.Column(str, pa.Check.str_length(min_value=1)),
        "value": pa.Column(float, _finite, coerce=True),
        "split": pa.Column(str, pa.Check.isin(SPLITS), required=False),
        **{
            c: pa.Column("int64", pa.Check.ge(0), coerce=True, required=False)
            for c in ("module", "epoch", "step")
        },
    },
    checks=_not_empty,
)
"""Long-format metrics table the pipeline writes: one (metric, value) per row, optional keys."""


def _describe(failures: pd.DataFrame) -> list[str]:
    """One sentence per (column, check): how many rows failed and the first of them."""
    f = failures.astype({"check": str}).copy()
    f["where"] = [  # empty for table-wide checks
        f"column '{col}' " if ctx == "Column" else "" for ctx, col in zip(f["schema_context"], f["column"])
    ]
    uncoerced = set(f.loc[f["check"].str.startswith("coerce_dtype"), "column"])
    redundant = f["column"].isin(uncoerced) & ~f["check"].str.startswith("coerce_dtype")
    f = f[~redundant].drop_duplicates(["where", "check", "index"])
    out = []
    for (where, check), group in f.groupby(["where", "check"], sort=False):
        if check == "column_in_dataframe":
            out.append(f"missing column '{group['failure_case'].iloc[0]}'")
            continue
        rows = group[group["index"].notna()]
        check = _PLAIN.get(check, check.replace("coerce_dtype", "cannot convert to dtype"))
        if rows.empty:
            out.append(f"{where}{check}")
            continue
        shown = rows.iloc[:FIRST_ROWS]
        first = ", ".join(
            str(i) if not where else f"{i} ({v!r})" if isinstance(v, str) else f"{i} ({v})"
            for i, v in zip(shown["index"], shown["failure_case"])
        )
        plural = "s" if len(rows) != 1 else ""
        out.append(f"{where}{check}: {len(rows)} failing row{plural}, first rows {first}")
    return out


def problems(
    df: pd.DataFrame, schema: pa.DataFrameSchema, source: str
) -> tuple[pd.DataFrame, list[str]]:
    """Validate ``df`` lazily; return the (coerced) frame and a list of '<source>: <problem>' lines."""
    try:
        return schema.validate(df, lazy=True), []
    except SchemaErrors as err:
        return df, [f"{source}: {line}" for line in _describe(err.failure_cases)]


def raise_problems(found: list[str], hint: str) -> None:
    """Raise one :class:`DataError` listing every problem (no-op when there are none)."""
    if found:
        raise DataError(f"{len(found)} problem(s): " + "; ".join(found) + f". {hint}")


def validate(df: pd.DataFrame, schema: pa.DataFrameSchema, source: str, hint: str) -> pd.DataFrame:
    """Validate one table; raise :class:`DataError` with every failure, else return the coerced frame."""
    df, found = problems(df, schema, source)
    raise_problems(found, hint)
    return df

"""The head report (``corpus.head_report(lm)``) as the view's heatmap draws it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError
from .state import HeadReportView

DIRECTIONS = ("dependent→head", "head→dependent")  # the order the view lists them in


def report_view(frame: pd.DataFrame, num_layers: int, num_heads: int) -> HeadReportView:
    """Per relation and direction, the ``layers × heads`` accuracies (layer-major, NaN-free: a
    head with no row gets 0) and the baseline; relations ordered by instances, most first.

    Raises:
        InputError: ``frame`` is not a head report (columns missing).
    """
    needed = {"relation", "direction", "layer", "head", "accuracy", "count", "few"}
    missing = needed - set(frame.columns)
    if missing:
        raise InputError(f"Not a head report: no column(s) {sorted(missing)}.")
    counts = frame.groupby("relation", sort=False).agg(count=("count", "max"), few=("few", "any"))
    counts = counts.sort_values("count", ascending=False, kind="stable")
    accuracy: dict[str, dict[str, list[float]]] = {}
    baseline: dict[str, dict[str, tuple[int, float]]] = {}
    for (relation, direction), rows in frame.groupby(["relation", "direction"], sort=False):
        grid = np.zeros((num_layers, num_heads), dtype=np.float64)
        inside = (rows["layer"] < num_layers) & (rows["head"] < num_heads)
        kept = rows[inside]
        grid[kept["layer"].to_numpy(), kept["head"].to_numpy()] = kept["accuracy"].to_numpy()
        accuracy.setdefault(str(relation), {})[str(direction)] = [
            round(float(v), 6) for v in grid.ravel()
        ]
        first = rows.iloc[0]
        baseline.setdefault(str(relation), {})[str(direction)] = (
            int(first["baseline_offset"]),
            round(float(first["baseline_accuracy"]), 6),
        )
    return {
        "num_layers": num_layers,
        "num_heads": num_heads,
        "relations": [
            {"relation": str(rel), "count": int(row["count"]), "few": bool(row["few"])}
            for rel, row in counts.iterrows()
        ],
        "directions": [d for d in DIRECTIONS if d in set(frame["direction"])],
        "accuracy": accuracy,
        "baseline": baseline,
    }


def top_heads(
    frame: pd.DataFrame, relations: list[str] | None = None, top: int = 3
) -> pd.DataFrame:
    """The ``top`` heads per relation and direction by accuracy, with the baseline beside them:
    the table the README and notebook 05 show.

    Raises:
        InputError: a relation the report has not.
    """
    if relations is not None:
        unknown = sorted(set(relations) - set(frame["relation"]))
        if unknown:
            raise InputError(f"The head report has no relation(s) {unknown}.")
        frame = frame[frame["relation"].isin(relations)]
    columns = ["relation", "direction", "layer", "head", "accuracy", "count"]
    columns += ["baseline_offset", "baseline_accuracy"]
    ordered = frame.sort_values(
        ["relation", "direction", "accuracy", "layer", "head"],
        ascending=[True, True, False, True, True],
        kind="stable",
    )
    return (
        ordered.groupby(["relation", "direction"], sort=False)
        .head(top)[columns]
        .reset_index(drop=True)
    )

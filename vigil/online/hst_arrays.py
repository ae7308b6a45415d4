"""River's HalfSpaceTrees scored a whole batch at a time, with numpy.

Why: the fleet detector scores every host once per interval — 10,000 rows a poll — and
``HalfSpaceTrees.score_one`` walks ``n_trees`` Python node objects per row (~20 µs with
our settings), the largest single cost of the loop. The trees stay River's: they are
built and learnt by ``river.anomaly.HalfSpaceTrees`` (``learn_one``); this module only
copies their splits and masses into arrays (heap order: the children of node ``i`` are
``2i + 1`` and ``2i + 2``; a padded tree is complete) and walks all rows level by level.

The result is *exactly* River's: the same walk (stop below ``size_limit``, a missing
feature goes to the child with the larger ``l_mass``), and the score is a sum of integers
times powers of two, so there is no rounding to differ in (``tests/unit/test_online_batch.py``
compares every row with ``score_one``).

>>> import random
>>> from river.anomaly import HalfSpaceTrees
>>> rng = random.Random(1)
>>> hst = HalfSpaceTrees(n_trees=3, height=4, window_size=20, seed=1)
>>> for _ in range(60):
...     hst.learn_one({"a": rng.random(), "b": rng.random()})
>>> rows = [{"a": 0.5, "b": 0.5}, {"a": 0.99, "b": 0.01}, {"b": 0.2}]
>>> x = np.array([[r.get("a", np.nan), r.get("b", np.nan)] for r in rows])
>>> fast = HstArrays.from_river(hst, ["a", "b"]).score(x)
>>> [round(s, 12) for s in fast] == [round(hst.score_one(r), 12) for r in rows]
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from river.anomaly import HalfSpaceTrees


@dataclass(frozen=True)
class HstArrays:
    """A snapshot of a HalfSpaceTrees' splits and masses; valid until its next ``learn_one``."""

    feature: np.ndarray  # (trees, nodes) column index of the split; -1 at leaves
    threshold: np.ndarray  # (trees, nodes)
    r_mass: np.ndarray  # (trees, nodes) reference-window mass (what scores use)
    l_mass: np.ndarray  # (trees, nodes) latest-window mass (routes missing features)
    height: int
    size_limit: float
    max_score: float
    first_window: bool

    @classmethod
    def from_river(cls, hst: HalfSpaceTrees, columns: Sequence[str]) -> HstArrays:
        """Copy ``hst``'s trees; ``columns`` names the columns of the matrices to score."""
        col = {name: i for i, name in enumerate(columns)}
        n_nodes = 2 ** (hst.height + 1) - 1
        n_trees = len(hst.trees)
        feature = np.full((n_trees, n_nodes), -1, dtype=np.int64)
        threshold = np.zeros((n_trees, n_nodes))
        r_mass = np.zeros((n_trees, n_nodes))
        l_mass = np.zeros((n_trees, n_nodes))
        for t, root in enumerate(hst.trees):
            stack = [(root, 0)]
            while stack:
                node, i = stack.pop()
                r_mass[t, i] = node.r_mass
                l_mass[t, i] = node.l_mass
                children = getattr(node, "children", None)
                if children:
                    try:
                        feature[t, i] = col[node.feature]
                    except KeyError:
                        raise ValueError(
                            f"the trees split on {node.feature!r}, which is not among the columns {list(columns)}"
                        ) from None
                    threshold[t, i] = node.threshold
                    stack.append((children[0], 2 * i + 1))
                    stack.append((children[1], 2 * i + 2))
        return cls(
            feature=feature,
            threshold=threshold,
            r_mass=r_mass,
            l_mass=l_mass,
            height=hst.height,
            size_limit=hst.size_limit,
            max_score=float(hst._max_score),  # noqa: SLF001 - River's own normaliser, to match it exactly
            first_window=bool(getattr(hst, "_first_window", not hst.trees)) or not hst.trees,
        )

    def score(self, x: np.ndarray) -> np.ndarray:
        """``score_one`` of every row of ``x`` (rows × columns; NaN = missing feature)."""
        x = np.asarray(x, dtype=float)
        n = len(x)
        if self.first_window or n == 0:
            return np.zeros(n)
        n_trees = self.feature.shape[0]
        trees = np.arange(n_trees)[:, None]
        rows = np.arange(n)[None, :]
        idx = np.zeros((n_trees, n), dtype=np.int64)
        active = np.ones((n_trees, n), dtype=bool)
        total = np.zeros((n_trees, n))
        weight = 1.0
        for _ in range(self.height):
            r = self.r_mass[trees, idx]
            total += np.where(active, r * weight, 0.0)
            active &= r >= self.size_limit
            value = x[rows, self.feature[trees, idx]]
            left = 2 * idx + 1
            missing = np.isnan(value)
            with np.errstate(invalid="ignore"):
                right = np.where(
                    missing,
                    self.l_mass[trees, left] < self.l_mass[trees, left + 1],
                    value >= self.threshold[trees, idx],
                )
            idx = left + right
            weight *= 2.0
        total += np.where(active, self.r_mass[trees, idx] * weight, 0.0)
        return 1.0 - total.sum(axis=0) / self.max_score

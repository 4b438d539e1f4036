"""Click logs with user behaviour sequences for `deepctr-ops demo`.

Each row is one impression: a user, a candidate item and its category, the
user's recent history of items and categories (most recent first, zero
padded), and whether the user clicked. The bundled generator plants a signal
a sequence model can learn: every user has a few favourite categories that
their history is drawn from, and the click probability rises with how often
the candidate's category (and the item itself) appears in the history.

A CSV given with --data has the header
`user,item,category,hist_items,hist_categories,label`, with the histories as
`|`-separated ids (most recent first) and ids starting at 1 (0 is padding).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

import numpy as np

COLUMNS = ("user", "item", "category", "hist_items", "hist_categories", "label")


@dataclass
class ClickLog:
    user: np.ndarray             # [N] int32, ids >= 1
    item: np.ndarray             # [N] int32
    category: np.ndarray         # [N] int32
    hist_items: np.ndarray       # [N, T] int32, 0 = padding
    hist_categories: np.ndarray  # [N, T] int32
    length: np.ndarray           # [N] int32, valid history steps
    label: np.ndarray            # [N] float32, 0/1

    def __len__(self) -> int:
        return len(self.label)

    @property
    def max_len(self) -> int:
        return self.hist_items.shape[1]

    def vocab(self, field: str) -> int:
        return int(getattr(self, field).max()) + 1

    def split(self, test_fraction: float, seed: int) -> tuple[ClickLog, ClickLog]:
        order = np.random.default_rng(seed).permutation(len(self))
        cut = int(len(self) * (1 - test_fraction))
        return self._take(order[:cut]), self._take(order[cut:])

    def _take(self, index: np.ndarray) -> ClickLog:
        return ClickLog(*(getattr(self, f)[index] for f in self.__dataclass_fields__))


def generate(samples: int = 40000, users: int = 2000, items: int = 1000, categories: int = 20,
             max_len: int = 30, seed: int = 2024) -> ClickLog:
    """Synthetic click logs with a planted, learnable sequence signal."""
    rng = np.random.default_rng(seed)
    item_category = rng.integers(1, categories + 1, size=items + 1)
    item_category[0] = 0
    favourites = rng.integers(1, categories + 1, size=(users + 1, 3))
    # Items of each category as rows of one padded table, to draw from at once.
    per_category = [np.flatnonzero(item_category == c) for c in range(categories + 1)]
    counts = np.array([max(len(ids), 1) for ids in per_category])
    table = np.ones((categories + 1, counts.max()), np.int64)
    for c, ids in enumerate(per_category):
        table[c, :len(ids)] = ids if len(ids) else 1

    def draw_items(cats: np.ndarray) -> np.ndarray:
        return table[cats, (rng.random(cats.shape) * counts[cats]).astype(np.int64)]

    user = rng.integers(1, users + 1, size=samples)
    length = rng.integers(1, max_len + 1, size=samples)
    # 80% of a user's history comes from their favourite categories.
    favourite_pick = favourites[user[:, None], rng.integers(0, 3, size=(samples, max_len))]
    hist_cats = np.where(rng.random((samples, max_len)) < 0.8, favourite_pick,
                         rng.integers(1, categories + 1, size=(samples, max_len)))
    valid = np.arange(max_len)[None, :] < length[:, None]
    hist_items = np.where(valid, draw_items(hist_cats), 0).astype(np.int32)
    hist_categories = item_category[hist_items].astype(np.int32)

    # Candidates: half from the user's favourite categories, half at random.
    from_favourite = rng.random(samples) < 0.5
    cand_cat = np.where(from_favourite, favourites[user, rng.integers(0, 3, size=samples)],
                        rng.integers(1, categories + 1, size=samples))
    item = draw_items(cand_cat).astype(np.int32)
    category = item_category[item].astype(np.int32)
    share = (hist_categories == category[:, None]).sum(1) / np.maximum(length, 1)
    seen = (hist_items == item[:, None]).any(1)
    logit = -2.5 + 6.0 * share + 1.5 * seen
    label = (rng.random(samples) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    return ClickLog(user.astype(np.int32), item, category, hist_items, hist_categories,
                    length.astype(np.int32), label)


def read_csv(path: str, max_len: int | None = None) -> ClickLog:
    """Reads a click log CSV (see the module docstring)."""
    rows = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)} (need {COLUMNS})")
        for line, row in enumerate(reader, start=2):
            try:
                hist_items = [int(v) for v in row["hist_items"].split("|") if v]
                hist_cats = [int(v) for v in row["hist_categories"].split("|") if v]
                if len(hist_items) != len(hist_cats):
                    raise ValueError("hist_items and hist_categories differ in length")
                rows.append((int(row["user"]), int(row["item"]), int(row["category"]),
                             hist_items, hist_cats, float(row["label"])))
            except ValueError as err:
                raise ValueError(f"{path}, line {line}: {err}") from err
    if not rows:
        raise ValueError(f"{path} has no rows")
    t = max_len or max(1, max(len(r[3]) for r in rows))
    n = len(rows)
    hist_items = np.zeros((n, t), np.int32)
    hist_cats = np.zeros((n, t), np.int32)
    length = np.zeros(n, np.int32)
    for i, r in enumerate(rows):
        k = min(len(r[3]), t)
        hist_items[i, :k], hist_cats[i, :k], length[i] = r[3][:k], r[4][:k], k
    user, item, category, _, _, label = zip(*rows)
    return ClickLog(np.array(user, np.int32), np.array(item, np.int32),
                    np.array(category, np.int32), hist_items, hist_cats, length,
                    np.array(label, np.float32))


def write_csv(log: ClickLog, path: str) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for i in range(len(log)):
            n = log.length[i]
            writer.writerow([log.user[i], log.item[i], log.category[i],
                             "|".join(map(str, log.hist_items[i, :n])),
                             "|".join(map(str, log.hist_categories[i, :n])), log.label[i]])


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC (ties count half), without scikit-learn."""
    labels = np.asarray(labels).ravel() > 0.5
    scores = np.asarray(scores, np.float64).ravel()
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # Average ranks over ties.
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    positives = labels.sum()
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        raise ValueError("AUC needs both clicks and non-clicks in the held-out data")
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))

"""Score tables for people (CSV, Excel) and for machines (Parquet, JSON).

People get the riskiest buyers first, probabilities rounded to 4 digits and, with
``lang="zh"``, Chinese headers and tier names (信任/标准/人工审核/限制); an Excel file
also holds a summary per tier. Machines get English names, tier codes and full
precision, in the input order. Translations come from :mod:`refundguard.serving.labels`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from refundguard.contract.vocabulary import TIERS
from refundguard.data.io import atomic_path, write_csv, write_parquet, write_text
from refundguard.serving.labels import (
    COLUMN_LABELS,
    OVERRIDE_LABELS,
    SHEET_LABELS,
    TIER_LABELS,
    Language,
)

# Output suffixes: for people, and machine-shaped.
PEOPLE_SUFFIXES: Final = (".csv", ".xlsx")
MACHINE_SUFFIXES: Final = (".parquet", ".json")
SCORE_SUFFIXES: Final = (*PEOPLE_SUFFIXES, *MACHINE_SUFFIXES)


# Digits of the probabilities people read.
PROBABILITY_DIGITS: Final = 4


_TOTAL: Final = {"zh": "合计", "en": "total"}
_YES_NO: Final = {"zh": ("是", "否"), "en": (True, False)}


def _severity(tiers: pd.Series) -> np.ndarray:
    rank = {t: i for i, t in enumerate(TIERS)}
    return tiers.map(rank).fillna(-1).to_numpy(dtype="float64")


def sort_by_risk(scores: pd.DataFrame) -> pd.DataFrame:
    """Riskiest first: by final tier (restrict first), then probability, then buyer id.

    The tier comes first so that buyers a list placed in restrict stand with the others
    in restrict, and no-history buyers with their tier.

    Args:
        scores: Scored buyers (buyer_id, probability, tier).

    Returns:
        The rows in that order, with a fresh index.
    """
    order = np.lexsort(
        (
            scores["buyer_id"].astype("str").to_numpy(),
            -scores["probability"].to_numpy(dtype="float64"),
            -_severity(scores["tier"]),
        )
    )
    return scores.iloc[order].reset_index(drop=True)


def _translate(frame: pd.DataFrame, lang: Language) -> pd.DataFrame:
    out = frame.copy()
    if lang == "zh":
        for column in ("tier", "model_tier"):
            if column in out.columns:
                out[column] = out[column].map(lambda t: TIER_LABELS["zh"].get(t, t))
        if "override" in out.columns:
            out["override"] = out["override"].map(lambda o: OVERRIDE_LABELS["zh"].get(o, o))
        if "known_buyer" in out.columns:
            yes, no = _YES_NO["zh"]
            out["known_buyer"] = [yes if k else no for k in out["known_buyer"].astype(bool)]
    return out.rename(columns=dict(COLUMN_LABELS[lang]))


def for_people(scores: pd.DataFrame, lang: Language = "en") -> pd.DataFrame:
    """The score table a person reads.

    Args:
        scores: Scored buyers as the scorer (and :mod:`refundguard.serving.lists`) gave.
        lang: "en" keeps the column names and tier codes; "zh" translates both.

    Returns:
        Sorted by :func:`sort_by_risk`, probability rounded to 4 digits.
    """
    out = sort_by_risk(scores)
    out["probability"] = out["probability"].astype("float64").round(PROBABILITY_DIGITS)
    return _translate(out, lang)


def tier_summary(scores: pd.DataFrame, lang: Language = "en") -> pd.DataFrame:
    """One row per tier (every tier, riskiest first) and a total row.

    Args:
        scores: Scored buyers (tier, probability; override when lists applied).
        lang: Language of the headers and tier names.

    Returns:
        tier, buyers, share, mean/min/max probability (4 digits) and, when lists
        applied, overridden (buyers of the tier whose place a list decided).
    """
    known = [*reversed(TIERS)]
    extra = sorted(set(scores["tier"].astype("str")) - set(TIERS))
    rows: list[dict[str, object]] = []
    total = len(scores)
    has_lists = "override" in scores.columns
    for tier in [*known, *extra, None]:
        part = scores if tier is None else scores[scores["tier"] == tier]
        prob = part["probability"].astype("float64")
        if tier is None:
            name = _TOTAL[lang]
        else:
            name = TIER_LABELS["zh"].get(tier, tier) if lang == "zh" else tier
        row: dict[str, object] = {
            "tier": name,
            "buyers": len(part),
            "share": round(len(part) / total, PROBABILITY_DIGITS) if total else 0.0,
        }
        for stat in ("mean", "min", "max"):
            value = float(getattr(prob, stat)()) if len(part) else float("nan")
            row[f"{stat}_probability"] = round(value, PROBABILITY_DIGITS)
        if has_lists:
            row["overridden"] = int((part["override"] != "").sum())
        rows.append(row)
    return pd.DataFrame(rows).rename(columns=dict(COLUMN_LABELS[lang]))


def write_excel(scores: pd.DataFrame, path: Path, lang: Language = "en") -> None:
    """Write the scores (sorted by risk) and the summary per tier as two sheets.

    Args:
        scores: Scored buyers.
        path: Destination ending in .xlsx.
        lang: Language of the headers, tier names and sheet names.
    """
    sheets = SHEET_LABELS[lang]
    people = for_people(scores, lang)
    summary = tier_summary(scores, lang)
    with atomic_path(path) as tmp:
        with pd.ExcelWriter(tmp, engine="openpyxl") as writer:
            for name, frame in ((sheets["scores"], people), (sheets["summary"], summary)):
                frame.to_excel(writer, sheet_name=name, index=False)
                sheet = writer.sheets[name]
                sheet.freeze_panes = "A2"
                if len(frame.columns):
                    sheet.auto_filter.ref = sheet.dimensions
                for i, column in enumerate(frame.columns, start=1):
                    width = max([len(str(column)), *(len(str(v)) for v in frame[column][:200])])
                    letter = sheet.cell(row=1, column=i).column_letter
                    sheet.column_dimensions[letter].width = min(max(width + 2, 8), 60)


def write_scores(scores: pd.DataFrame, path: Path, lang: Language = "en") -> None:
    """Write scores by the file's suffix: for people (.csv, .xlsx) or machines.

    .csv and .xlsx: :func:`for_people` (the .xlsx with :func:`tier_summary` as a second
    sheet). .parquet and .json: the frame as given, English names, full precision (JSON
    as a list of records, times in ISO 8601); ``lang`` does not apply.

    Args:
        scores: Scored buyers.
        path: Destination.
        lang: Language of the files for people.

    Raises:
        ValueError: An unknown suffix.
    """
    suffix = path.suffix.lower()
    if suffix == ".csv":
        write_csv(for_people(scores, lang), path)
    elif suffix == ".xlsx":
        write_excel(scores, path, lang)
    elif suffix == ".parquet":
        write_parquet(scores, path)
    elif suffix == ".json":
        records = scores.astype(object).where(scores.notna(), None).to_dict(orient="records")
        rows = [{k: _plain(v) for k, v in r.items()} for r in records]
        write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", path)
    else:
        raise ValueError(f"unknown score file type {path.suffix!r}")


def _plain(value: object) -> object:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value

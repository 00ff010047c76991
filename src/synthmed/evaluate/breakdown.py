"""Per-finding and per-prompt breakdown of the feature metrics.

When generated rows carry ``requested_findings``, each categorical attribute value (e.g.
``size_category = large``) defines a group: the fakes requested with that value against the
reals whose ``findings`` have it. Per prompt, the fakes generated from one prompt are compared
with the reals whose findings agree with every categorical attribute of that request.
Continuous attributes (``size_mm``) are left to their categories. Groups with fewer than
``min_group`` images on either side are listed as skipped. Small groups give biased FDs:
compare a group only with the same group of another model at the same n.
"""

from __future__ import annotations

import logging
import warnings
from collections import defaultdict
from typing import Any

import torch

from synthmed.data.records import DatasetRecord
from synthmed.evaluate.fidelity import SmallSampleWarning, fidelity_scores

logger = logging.getLogger(__name__)


def categorical_attributes(findings: Any) -> dict[str, str]:
    """The categorical attributes of a findings object as strings (floats and unset values dropped)."""
    if findings is None:
        return {}
    out: dict[str, str] = {}
    for key, val in findings.to_dict().items():
        if key == "modality" or val is None or isinstance(val, float):
            continue
        if isinstance(val, (list, tuple)):
            if not val:
                continue
            val = "+".join(str(v) for v in val)
        out[key] = str(val).lower() if isinstance(val, bool) else str(val)
    return out


def _group_scores(real: torch.Tensor, fake: torch.Tensor, pr_k: int, seed: int) -> dict[str, Any]:
    n = min(real.shape[0], fake.shape[0])
    k = pr_k if n > pr_k else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        s, _ = fidelity_scores(real, fake, pr_k=k, dc_k=None, seed=seed)
    out: dict[str, Any] = {"fd": s.fid, "kid": s.kid.mean, "kid_subset_size": s.kid.subset_size}
    if s.precision_recall is not None:
        out.update(precision=s.precision_recall.precision, recall=s.precision_recall.recall)
    return out


def breakdown(real_records: list[DatasetRecord], fake_records: list[DatasetRecord], real_feats: torch.Tensor,
              fake_feats: torch.Tensor, *, min_group: int = 10, pr_k: int = 3, seed: int = 2020,
              max_prompts: int = 50) -> dict[str, Any] | None:
    """Scores per requested attribute value and per prompt, or None when no fake row has requested findings."""
    fake_attrs = [categorical_attributes(r.requested_findings) for r in fake_records]
    if not any(fake_attrs):
        return None
    real_attrs = [categorical_attributes(r.findings) for r in real_records]
    per_finding, skipped = [], []
    by_value: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, attrs in enumerate(fake_attrs):
        for kv in attrs.items():
            by_value[kv].append(i)
    for (attr, value), f_idx in sorted(by_value.items()):
        r_idx = [j for j, a in enumerate(real_attrs) if a.get(attr) == value]
        entry = {"attribute": attr, "value": value, "n_real": len(r_idx), "n_fake": len(f_idx)}
        if min(len(r_idx), len(f_idx)) < max(min_group, 2):
            skipped.append(entry)
            continue
        entry.update(_group_scores(real_feats[r_idx], fake_feats[f_idx], pr_k, seed))
        per_finding.append(entry)

    per_prompt, prompt_skipped = [], 0
    by_prompt: dict[str, list[int]] = defaultdict(list)
    for i, rec in enumerate(fake_records):
        if fake_attrs[i]:
            by_prompt[rec.prompt or " ".join(f"{k}={v}" for k, v in sorted(fake_attrs[i].items()))].append(i)
    for prompt, f_idx in sorted(by_prompt.items(), key=lambda kv: -len(kv[1])):
        request = fake_attrs[f_idx[0]]
        r_idx = [j for j, a in enumerate(real_attrs) if all(a.get(k) == v for k, v in request.items())]
        if min(len(r_idx), len(f_idx)) < max(min_group, 2) or len(per_prompt) >= max_prompts:
            prompt_skipped += 1
            continue
        entry = {"prompt": prompt, "requested": request, "n_real": len(r_idx), "n_fake": len(f_idx)}
        entry.update(_group_scores(real_feats[r_idx], fake_feats[f_idx], pr_k, seed))
        per_prompt.append(entry)
    return {
        "min_group": min_group,
        "note": "FD/KID per group at small n are biased; compare groups only across models at equal n.",
        "per_finding": per_finding,
        "per_finding_skipped": skipped,
        "per_prompt": per_prompt,
        "per_prompt_skipped": prompt_skipped,
        "prompts_total": len(by_prompt),
    }


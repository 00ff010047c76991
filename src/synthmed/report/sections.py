"""Report sections, one function each; a section returns no HTML when its data does not exist in the run."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from html import escape
from pathlib import Path
from typing import Any

import synthmed.report.svg as svg
from synthmed.report.html import cards, display_width, fmt, img_tag, png_uri, table, trusted, with_ci
from synthmed.report.rundata import RunData, StageInfo, location_group, read_json, read_rows, size_group
from synthmed.utils.secrets import redact_secrets

logger = logging.getLogger(__name__)

_FID_KEYS = ("fid", "kid", "precision", "recall", "f1", "density", "coverage", "inception_score")
_SHOWN_ATTRS = ("tumor_present", "hemisphere", "lobe", "size_category", "shape", "intensity", "orientation", "edema")


# -- summary ----------------------------------------------------------------------------------------
def headline(run: RunData) -> list[tuple[str, str]]:
    """The numbers a reader wants first, each with its interval when one was computed.

    Each stage kind's result model says which of its numbers these are.
    """
    out: list[tuple[str, str]] = []
    for s in run.done(""):
        result = s.result()
        if result is not None:
            out += [(label, with_ci(m.value, m.ci95)) for label, m in result.headline(s.name)]
    for s in run.done("caption"):
        acc = s.summary.get("accuracy_vs_original", {}).get("tumor_present")
        if acc:
            out.append((f"captioner tumour presence accuracy ({s.name}, n={acc['n']})", fmt(acc["accuracy"])))
    return out


def trained_on_what(run: RunData) -> str:
    rows = []
    for s in _trained(run):
        src = run.stage(s.ref("data"))
        base = s.settings.get("base") or s.settings.get("backbone") or s.settings.get("decoder") or "from scratch"
        if base == "scratch":
            base = "CLIP pretrained from scratch on the training data"
        n = len(read_rows(src.out)) if src else None
        rows.append(
            [
                s.name,
                s.kind,
                src.name if src else str(s.settings.get("data", "—")),
                n,
                str(base) if s.kind != "train.ldm" else "from scratch",
                s.settings.get("seed"),
            ]
        )
    for s in run.done("generate"):
        model = run.stage(s.ref("model"))
        rows.append(
            [
                s.name,
                s.kind,
                model.name if model else str(s.settings.get("model")),
                len(read_rows(s.out)),
                f"{s.settings.get('steps')} steps, {s.settings.get('scheduler')}, "
                f"guidance {s.settings.get('guidance_scale')}",
                s.settings.get("seed"),
            ]
        )
    return table(
        ["stage", "kind", "trained on / from", "images", "base / sampler", "seed"],
        rows,
        caption="What was trained on what",
    )


def stage_table(run: RunData) -> str:
    rows = []
    for s in run.stages:
        status = trusted(f'<span class="status-{escape(s.status)}">{escape(s.status)}</span>')
        rows.append([s.name, s.kind, status, f"{s.seconds:.1f}" if s.seconds else "—"])
    return table(["stage", "kind", "status (last run)", "seconds"], rows)


# -- real vs generated grids ----------------------------------------------------------------------
def _real_source(run: RunData) -> StageInfo | None:
    for s in run.done("evaluate.fidelity"):
        if run.stage(s.ref("real")):
            return run.stage(s.ref("real"))
    for s in run.done("train."):
        if run.stage(s.ref("data")):
            return run.stage(s.ref("data"))
    datasets = [s for s in run.stages if s.kind in ("data.phantom", "data.import", "caption", "paraphrase")]
    return datasets[-1] if datasets else None


def grids(run: RunData, per_side: int = 6, max_rows: int = 10) -> list[str]:
    real = _real_source(run)
    if real is None:
        return []
    real_rows = read_rows(real.out)
    out: list[str] = []
    for gen in run.done("generate"):
        fake_rows = read_rows(gen.out)
        if not real_rows or not fake_rows:
            continue
        for title, key in (("by tumour location", location_group), ("by size", size_group)):
            r_groups: dict[str, list[dict]] = defaultdict(list)
            f_groups: dict[str, list[dict]] = defaultdict(list)
            for r in real_rows:
                k = key(r.get("findings"), r.get("label"))
                if k:
                    r_groups[k].append(r)
            for r in fake_rows:
                k = key(r.get("requested_findings") or r.get("findings"), r.get("label"))
                if k:
                    f_groups[k].append(r)
            names = [k for k, _ in Counter({k: len(v) for k, v in f_groups.items()}).most_common() if k in r_groups]
            if not names:
                continue
            names = sorted(names[:max_rows], key=lambda k: (k.startswith("no "), k))
            html = [
                f"<h3>Real ({escape(real.name)}) vs generated ({escape(gen.name)}), {escape(title)}</h3>",
                f'<table class="grid"><tr><th></th><th class="side" colspan="{per_side}">real</th>'
                f'<td class="sep"></td><th class="side" colspan="{per_side}">generated</th></tr>',
            ]
            for name in names:
                cells = [
                    f'<th class="row">{escape(name)}<br><span class="muted">{len(r_groups[name])} / '
                    f"{len(f_groups[name])}</span></th>"
                ]
                for side, rows, root in (("real", r_groups[name], real.out), ("gen", f_groups[name], gen.out)):
                    for i in range(per_side):
                        if i < len(rows):
                            alt = rows[i].get("prompt") or rows[i].get("text") or rows[i]["file_name"]
                            cells.append(f"<td>{img_tag(png_uri(root / rows[i]['file_name'], 96), alt, 72)}</td>")
                        else:
                            cells.append("<td></td>")
                    if side == "real":
                        cells.append('<td class="sep"></td>')
                html.append("<tr>" + "".join(cells) + "</tr>")
            html.append("</table>")
            out.append("".join(html))
    if out:
        out.insert(
            0,
            '<p class="note">One row per requested finding; generated images are grouped by the findings '
            "their prompt asked for, real images by their captioned findings. Numbers: real / generated "
            "images in the group.</p>",
        )
    return out


# -- training ---------------------------------------------------------------------------------------
def _tensorboard_losses(out: Path) -> dict[str, list[tuple[float, float]]]:
    files = sorted(out.glob("logs/**/events.out.tfevents.*"))
    if not files:
        return {}
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        return {}
    series: dict[str, list[tuple[float, float]]] = {}
    for f in files:
        try:
            acc = EventAccumulator(str(f), size_guidance={"scalars": 0})
            acc.Reload()
            for tag in acc.Tags().get("scalars", []):
                if "loss" in tag.lower():
                    series.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
        except Exception as err:  # a corrupt or partial event file must not break the report
            logger.debug("cannot read %s: %s", f, err)
    return series


def _trained(run: RunData) -> list[StageInfo]:
    """Finished stages that train a model (``train.*`` and the localiser)."""
    return [s for s in run.stages if s.status in ("ran", "resumed", "skipped")
            and (s.kind.startswith("train.") or s.kind == "localize.train")]


def _training_dirs(s: StageInfo) -> list[tuple[str, Path]]:
    """(label, folder) of a training stage's output and of its sub-runs (Kandinsky's ``stage1-decoder``...)."""
    dirs = [(s.name, s.out)]
    if s.out.is_dir():
        dirs += [(f"{s.name}/{d.name}", d) for d in sorted(s.out.iterdir())
                 if d.is_dir() and any((d / sub).is_dir() for sub in ("logs", "validation", "samples"))]
    return dirs


def training(run: RunData) -> list[str]:
    out: list[str] = []
    plots: list[str] = []
    figs: list[str] = []
    for s in _trained(run):
        for label, folder in _training_dirs(s):
            prov = read_json(folder / "synthmed.json") or {}
            history = prov.get("history")
            if isinstance(history, list) and history and isinstance(history[0], dict):
                series = {
                    k: [(h.get("epoch", i + 1), h[k]) for i, h in enumerate(history) if isinstance(h.get(k), float)]
                    for k in ("train_loss", "val_loss")
                }
                plots.append(svg.line_chart({k: v for k, v in series.items() if v}, title=f"{label}: loss per epoch",
                                            xlabel="epoch", ylabel="loss"))
            tb = _tensorboard_losses(folder)
            if tb:
                plots.append(svg.line_chart(tb, title=f"{label}: training loss", xlabel="step", ylabel="loss",
                                            logy=True))
            result = prov.get("result") if isinstance(prov.get("result"), dict) else {}
            facts = [(name.replace("_", " "), value) for name, value in
                     (*((k, prov.get(k)) for k in ("loss_first_epoch", "loss_last_epoch", "final_loss")),
                      ("last loss", result.get("last_loss")), ("steps", result.get("steps")))
                     if isinstance(value, int | float) and not isinstance(value, bool)]
            if facts:
                out.append(f"<p>{escape(label)}: " + ", ".join(f"{k} = {fmt(v)}" for k, v in facts) + "</p>")
            for sub in ("samples", "validation"):
                pngs = sorted((folder / sub).glob("*.png"))
                shown = [q for q in pngs if "autoencoder" in q.name][:1] + [
                    q for q in pngs if "autoencoder" not in q.name][-1:]
                figs += [f'<figure><img class="thumb" src="{png_uri(p, 384)}" alt="{escape(p.name)}" '
                         f'width="{display_width(p)}"><figcaption>{escape(label)}: {escape(p.name)}</figcaption>'
                         "</figure>" for p in shown]
    if plots:
        out.insert(0, '<div class="plots">' + "".join(plots) + "</div>")
    if figs:
        out.append("<h3>Samples saved during training (validation grids)</h3>" + "".join(figs))
    return out


# -- evaluation -------------------------------------------------------------------------------------
def fidelity(run: RunData) -> list[str]:
    out: list[str] = []
    points, by_steps = [], []
    for s in run.done("evaluate.fidelity"):
        res = s.result()
        if res is None:
            continue
        metrics = res.metrics
        rows = [[k, with_ci(metrics[k].value, metrics[k].ci95)] for k in _FID_KEYS if k in metrics]
        floor = res.real_vs_real.metrics if res.real_vs_real else {}
        if "fid" in floor:
            rows.append(["fid, real vs real (floor)", fmt(floor["fid"].value)])
        out.append(
            f"<h3>{escape(s.name)}</h3><p class=note>features: {escape(str(res.extractor.get('name')))}; "
            f"{res.n_real} real vs {res.n_fake} generated images; "
            f"comparable with published numbers: {fmt(res.comparable_with_published)}</p>"
        )
        out.append(table(["metric", "value [95% CI]"], rows))
        if "precision" in metrics and "recall" in metrics:
            p, r = metrics["precision"].value, metrics["recall"].value
            if p is not None and r is not None:
                points.append((s.name, r, p))
        gen = run.stage(s.ref("fake"))
        if gen is not None and "steps" in gen.settings and "fid" in metrics:
            by_steps.append((gen.settings["steps"], metrics["fid"].value))
        per = (res.breakdown or {}).get("per_finding") or []
        if per:
            keys = [k for k in ("fid", "precision", "recall") if any(k in e for e in per)]
            out.append(
                table(
                    ["attribute", "value", "real", "generated", *keys],
                    [
                        [
                            e.get("attribute"),
                            str(e.get("value")),
                            e.get("n_real"),
                            e.get("n_fake"),
                            *[e.get(k) for k in keys],
                        ]
                        for e in per[:40]
                    ],
                    caption="Per requested finding",
                )
            )
        for w in res.warnings[:5]:
            out.append(f"<p class=note>note: {escape(str(w))}</p>")
    plots = []
    if points:
        plots.append(svg.scatter(points, title="Precision vs recall", xlabel="recall", ylabel="precision"))
    if len({x for x, _ in by_steps}) >= 2:
        plots.append(
            svg.line_chart(
                {"FID": sorted(by_steps)},
                title="Fréchet distance vs sampling steps",
                xlabel="sampling steps",
                ylabel="FID",
            )
        )
    if plots:
        out.append('<div class="plots">' + "".join(plots) + "</div>")
    return out


def adherence(run: RunData) -> list[str]:
    out: list[str] = []
    for s in run.done("evaluate.adherence"):
        res = s.result()
        if res is None:
            continue
        attrs = {k: v for k, v in res.attributes.items() if v.n}
        judge_acc = res.judge_real_test_accuracy
        names = [a for a in (*_SHOWN_ATTRS, "location") if a in attrs] + [
            a for a in attrs if a not in _SHOWN_ATTRS and a != "location"
        ]
        plot = svg.grouped_bars(
            names,
            {
                "generated (judged)": [
                    (attrs[a].value, attrs[a].ci95) for a in names
                ],
                "judge on real test": [
                    (judge_acc.get(a) if judge_acc.get(a) is not None else float("nan"), None) for a in names
                ],
            },
            title=f"{s.name}: prompt adherence per attribute",
            ylabel="accuracy",
            ymax=1.0,
            width=max(560, 70 * len(names)),
        )
        unreliable = res.judge_unreliable_attributes
        out.append(f"<h3>{escape(s.name)} (n = {res.n})</h3>" + plot)
        out.append(
            table(
                ["attribute", "accuracy [95% Wilson CI]", "n", "judge on real test", "judge reliable"],
                [
                    [
                        a,
                        with_ci(attrs[a].value, attrs[a].ci95),
                        attrs[a].n,
                        judge_acc.get(a),
                        a not in unreliable,
                    ]
                    for a in names
                ],
            )
        )
        mats = []
        for a in names:
            cm = attrs[a].confusion_matrix
            if cm and cm.get("matrix") and len(cm["reference"]) <= 12 and len(mats) < 6:
                mats.append(svg.heatmap(cm["matrix"], cm["reference"], cm["predicted"], title=f"{a}: confusion"))
        if mats:
            out.append('<h3>Confusion matrices (requested → judged)</h3><div class="plots">' + "".join(mats) + "</div>")
    return out


def downstream(run: RunData) -> list[str]:
    out: list[str] = []
    for s in run.done("evaluate.downstream"):
        res = s.result()
        if res is None or not res.conditions:
            continue
        conds = res.conditions
        metric_names = [
            m
            for m in ("auroc", "accuracy", "balanced_accuracy", "f1")
            if all(m in c.metrics for c in conds.values())
        ]
        series = {
            name: [
                (c.metrics[m].value, c.metrics[m].ci95) for m in metric_names
            ]
            for name, c in conds.items()
        }
        if metric_names:
            out.append(
                svg.grouped_bars(
                    metric_names, series, title=f"{s.name}: TRTR vs TSTR (held-out real test)", ylabel="score", ymax=1.0
                )
            )
        rows = [
            [
                name,
                c.n_real,
                c.n_synthetic,
                *[with_ci(c.metrics[m].value, c.metrics[m].ci95) for m in metric_names],
            ]
            for name, c in conds.items()
        ]
        out.append(
            table(
                ["condition", "real", "synthetic", *metric_names],
                rows,
                caption=f"test: {res.test.get('n')} images, "
                f"{res.test.get('patients')} patients; patient-level bootstrap",
            )
        )
        comp = res.comparisons
        if comp:
            out.append(
                table(
                    ["comparison", *metric_names],
                    [
                        [
                            k,
                            *[
                                with_ci(v.metrics[m].value, v.metrics[m].ci95) if m in v.metrics else fmt(None)
                                for m in metric_names
                            ],
                        ]
                        for k, v in comp.items()
                    ],
                )
            )
    return out


def privacy(run: RunData, max_pairs: int = 8) -> list[str]:
    out: list[str] = []
    for s in run.done("evaluate.privacy"):
        res = s.result()
        if res is None:
            continue
        out.append(
            cards(
                [
                    ("likely copies", f"{res.likely_copies} / {res.n_synthetic}"),
                    ("memorisation fraction", with_ci(res.memorisation.value, res.memorisation.ci95)),
                ]
            )
        )
        out.append(f"<p class=note>{escape(res.rule)}</p>")
        spaces = res.spaces
        out.append(
            table(
                ["space", "threshold", "flagged", "median synthetic→train", "median reference→train", "units"],
                [
                    [
                        k,
                        v.get("threshold"),
                        v.get("flagged"),
                        (v.get("synthetic_to_train") or {}).get("median"),
                        (v.get("reference_to_train") or {}).get("median"),
                        v.get("units"),
                    ]
                    for k, v in spaces.items()
                ],
            )
        )
        figs = [
            f"<figure>{img_tag(png_uri(s.out / p['png'], 256), p['png'])}<figcaption>{escape(p['synthetic'])} vs "
            f"{escape(p['train'])}: {fmt(p.get('distance_pixels'))}</figcaption></figure>"
            for p in res.pairs[:max_pairs]
            if (s.out / p["png"]).is_file()
        ]
        if figs:
            out.append("<h3>Nearest-neighbour pairs (generated | training)</h3>" + "".join(figs))
    return out


def captions(run: RunData) -> list[str]:
    out: list[str] = []
    for s in run.done("caption"):
        acc = s.summary.get("accuracy_vs_original")
        if acc:
            names = [a for a in acc if acc[a].get("n")]
            out.append(
                svg.bar_chart(
                    [(a, acc[a]["accuracy"], None) for a in names],
                    ymax=1.0,
                    ylabel="accuracy",
                    title=f"{s.name}: {s.summary.get('captioner')} captioner vs ground truth",
                    width=max(420, 60 * len(names)),
                )
            )
    for s in run.done("evaluate.captions"):
        res = s.result()
        caps = {name: c.attributes for name, c in res.captioners.items()} if res is not None else {}
        if not caps:
            continue
        scored = [{a: m for a, m in c.items() if m.n} for c in caps.values()]
        attrs = [a for a in (*_SHOWN_ATTRS, "location") if any(a in c for c in scored)]
        attrs += sorted({a for c in scored for a in c if a not in attrs})
        rows = [[a, *[with_ci(c[a].value, c[a].ci95) if a in c else None for c in scored],
                 *[c[a].n if a in c else None for c in scored]] for a in attrs]
        rows.append(["missing predictions", *[res.captioners[n].missing_predictions for n in caps],
                     *[""] * len(caps)])
        out.append(f"<h3>{escape(s.name)}: caption accuracy against the reference "
                   f"({res.n_reference} images)</h3>"
                   + table(["attribute", *[f"{n} [95% Wilson CI]" for n in caps], *[f"n ({n})" for n in caps]], rows))
    return out


def localisation(run: RunData, max_images: int = 8) -> list[str]:
    out: list[str] = []
    for s in run.done("localize.predict"):
        res = s.result()
        flat = [[k, with_ci(m.value, m.ci95)] for k, m in res.metrics.items()] if res is not None else []
        if flat:
            out.append(f"<h3>{escape(s.name)}</h3>" + table(["metric", "value"], flat))
        preds = []
        pred_file = s.out / "predictions.jsonl"
        if pred_file.is_file():
            import json

            for line in pred_file.read_text().splitlines()[:max_images]:
                try:
                    preds.append(json.loads(line))
                except ValueError:
                    continue
        figs = []
        for row in preds:
            imgs = "".join(
                img_tag(png_uri(s.out / row[k], 192), f"{row.get('file_name')} {k}", cls="thumb big")
                for k in ("heatmap", "overlay")
                if row.get(k) and (s.out / row[k]).is_file()
            )
            if imgs:
                score = row.get("image_score")
                caption = escape(str(row.get("file_name"))) + (f"; image score {fmt(score)}" if score is not None
                                                                else "")
                figs.append(f"<figure>{imgs}<figcaption>{caption}</figcaption></figure>")
        if figs:
            out.append("<h3>Anomaly maps (left) and predicted regions on the image (right)</h3>" + "".join(figs))
    return out


def explanations(run: RunData, max_items: int = 4) -> list[str]:
    out: list[str] = []
    for s in run.done("explain"):
        res = s.result()
        if res is None:
            continue
        scores = res.scores
        attrs = sorted({a for v in scores.values() for a in v.attributes})
        out.append(f"<h3>{escape(s.name)}: {escape(res.model)}</h3>")
        out.append(
            table(
                ["mode", "n", "parsed", *attrs],
                [
                    [m, v.n, v.parsed_fraction, *[v.attributes[a].value if a in v.attributes else None
                                                  for a in attrs]]
                    for m, v in scores.items()
                ],
            )
        )
        data = Path(s.settings.get("data", ""))
        pred = Path(s.settings["pred"]) if s.settings.get("pred") else None
        overlays = _overlays(pred) if pred else {}
        for item in res.items[:max_items]:
            pics = [(data / item["file_name"], "image")]
            if item["file_name"] in overlays:
                pics.append((pred / overlays[item["file_name"]], "localisation shown to the VLM"))  # type: ignore[operator]
            pic = "".join(img_tag(png_uri(p, 192), f"{item['file_name']}: {what}", cls="thumb big")
                          for p, what in pics if p.is_file())
            ref = _findings_text(item.get("reference_findings"))
            texts = "".join(
                f"<p><b>{escape(mode)}</b>: {escape(str(r.get('explanation') or r.get('error') or '—')[:600])}"
                f"{_parsed(r.get('findings'))}</p>"
                for mode, r in (item.get("results") or {}).items()
            )
            ref_html = f"<br>reference: {escape(ref)}" if ref else ""
            out.append(f'<div class="explain"><figure>{pic}<figcaption>{escape(item["file_name"])}{ref_html}'
                       f"</figcaption></figure><div>{texts}</div></div>")
    return out


def reader_study(run: RunData) -> list[str]:
    """Each reader-study stage: the scores (once `synthmed study score` ran) or how far the readers are."""
    from synthmed.study.layout import ANSWERS_FILE, read_settings

    out: list[str] = []
    for s in run.done("study"):
        res = s.result()
        if res is None:
            answers = _count_answers(s.out / ANSWERS_FILE)
            n = len(read_settings(s.out).items) if (s.out / "study.json").is_file() else 0
            out.append(f"<h3>{escape(s.name)}</h3><p>{n} images; {answers} answers so far. Serve it with "
                       f"<code>synthmed study serve {escape(str(s.out))}</code>, then score it with "
                       f"<code>synthmed study score {escape(str(s.out))}</code>.</p>")
            continue
        pooled = res.pooled.metrics
        out.append(f"<h3>{escape(s.name)}: {len(res.readers)} readers, {res.n_real} real + {res.n_synthetic} "
                   "synthetic images</h3>")
        out.append(cards([(label, with_ci(pooled[k].value, pooled[k].ci95)) for k, label in (
            ("accuracy", "reader accuracy (0.5 = chance)"), ("auroc", "ROC AUC"), ("fleiss_kappa", "Fleiss' kappa"),
            ("realism_real", "realism of real (1-5)"), ("realism_synthetic", "realism of synthetic (1-5)"))
            if k in pooled]))
        keys = ("accuracy", "sensitivity", "specificity", "auroc", "realism_real", "realism_synthetic")
        rows = [[name, r.n, *[with_ci(r.metrics[k].value, r.metrics[k].ci95) if k in r.metrics else None
                              for k in keys]] for name, r in [*res.readers.items(), ("pooled", res.pooled)]]
        out.append(table(["reader", "n", *keys], rows, caption="positive class: synthetic; "
                         + res.conventions.get("call", "")))
        curves = {name: r.roc for name, r in [*res.readers.items(), ("pooled", res.pooled)] if r.roc}
        if curves:
            curves["chance"] = [(0.0, 0.0), (1.0, 1.0)]
            out.append(svg.line_chart(curves, title=f"{s.name}: ROC of calling an image synthetic (1-6 confidence)",
                                      xlabel="false-positive rate (real called synthetic)",
                                      ylabel="true-positive rate", width=max(480, 100 + 130 * len(curves)),
                                      height=320))  # the legend puts a name every 130 px
        test = pooled.get("realism_mann_whitney_p")
        if test is not None:
            out.append(f"<p class=note>Realism, real vs synthetic: {escape(test.note or '')}, "
                       f"p = {test.value:.3g}.</p>")
        for origin, attrs in res.adherence.items():
            out.append(table(["attribute", "agreement [95% Wilson CI]", "n"],
                             [[k, with_ci(a.value, a.ci95), a.n] for k, a in attrs.items()],
                             caption=f"readers' findings on {origin} images"))
    return out


def _count_answers(db: Path) -> int:
    import sqlite3

    if not db.is_file():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return int(con.execute("SELECT COUNT(*) FROM answers").fetchone()[0])
    except sqlite3.Error:
        return 0


def _overlays(pred: Path) -> dict[str, str]:
    """file name -> overlay path of a ``localize.predict`` folder (empty when it has none)."""
    import json

    rows: dict[str, str] = {}
    path = pred / "predictions.jsonl"
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if row.get("overlay"):
            rows[row["file_name"]] = row["overlay"]
    return rows


def _findings_text(findings: dict[str, Any] | None) -> str:
    if not findings:
        return ""
    from synthmed.findings.render import render_text
    from synthmed.findings.schema import BrainMRIFindings

    try:
        return render_text(BrainMRIFindings.model_validate(findings), header="")
    except ValueError:
        return ""


def _parsed(findings: dict[str, Any] | None) -> str:
    text = _findings_text(findings)
    return f' <span class="muted">(parsed: {escape(text)})</span>' if text else ""


def provenance_block(run: RunData) -> list[str]:
    import yaml

    rec = run.record
    prov = rec.get("provenance", {})
    rows = [
        ["run directory", str(run.dir)],
        ["git revision", prov.get("git_revision") or "—"],
        ["python", prov.get("python")],
        ["platform", prov.get("platform")],
        ["started", rec.get("started")],
        ["finished", rec.get("finished")],
        ["config file", rec.get("config_file")],
    ]
    out = [table(["", ""], rows)]
    out.append(
        table(["package", "version"], [[k, v or "not installed"] for k, v in (prov.get("packages") or {}).items()])
    )
    out.append(table(["seed of", "value"], [[k, v] for k, v in (rec.get("seeds") or {}).items()]))
    if rec.get("data_hashes"):
        out.append(
            table(["data", "SHA-256"],
                  [[k, trusted(f"<code>{escape(v)}</code>")] for k, v in rec["data_hashes"].items()])
        )
    out.append(
        table(
            ["stage", "seconds"],
            [[k, v] for k, v in (rec.get("timings_s") or {}).items()],
            caption="Timings (a skipped stage keeps the time of the run that made its output)",
        )
    )
    out.append(
        "<details><summary>Resolved pipeline config</summary><pre>"
        + escape(yaml.safe_dump(redact_secrets(rec.get("config")), sort_keys=False))  # older runs too
        + "</pre></details>"
    )
    return out


__all__ = [
    "adherence",
    "captions",
    "downstream",
    "explanations",
    "fidelity",
    "grids",
    "headline",
    "localisation",
    "privacy",
    "provenance_block",
    "read_json",
    "reader_study",
    "stage_table",
    "trained_on_what",
    "training",
]

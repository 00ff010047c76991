"""The Gradio app: Generate, Localise and explain, Runs. Callbacks run in Gradio's worker threads, never the UI's."""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from synthmed.app import generate as G
from synthmed.app import localize as L
from synthmed.app.models import AppConfig, AppModels
from synthmed.errors import ConfigError, SynthmedError

logger = logging.getLogger(__name__)


def require_gradio() -> Any:
    """Gradio, or a ConfigError naming the extra that installs it."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError as err:
        raise ConfigError("the app needs Gradio: pip install 'synthmed[app]'") from err
    return gr


def shown_errors(fn):
    """Errors become a message in the app (``gr.Error``), never a stack trace."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        gr = require_gradio()
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (SynthmedError, ValueError) as err:
            raise gr.Error(str(err)) from err
        except Exception as err:  # noqa: BLE001 - logged in full; the user sees one line
            logger.exception("app callback %s failed", fn.__name__)
            raise gr.Error(f"unexpected error ({type(err).__name__}: {err}); the server log has the details") from err
    return wrapper


def _choices(values) -> list[str]:
    return [G.ANY, *[str(v) for v in values]]


def build_app(cfg: AppConfig, models: AppModels | None = None):
    """The app as a ``gr.Blocks`` (not launched)."""
    gr = require_gradio()
    from synthmed.findings.schema import HEMISPHERES, INTENSITIES, LOBES, ORIENTATIONS, SHAPES, SIZE_CATEGORIES
    from synthmed.generate.pipeline import model_id
    from synthmed.generate.schedulers import scheduler_names

    models = models or AppModels(cfg)
    g = models.generation

    with gr.Blocks(title="synthmed") as app:
        gr.Markdown("# synthmed\nFindings in, labelled images out; a scan in, its tumour localised and explained.")
        with gr.Tab("Generate", id="generate"):
            if g is None:
                gr.Markdown("**No generator.** Start the app with `--model DIR` or `--run RUN_DIR`.")
            with gr.Row():
                with gr.Column(scale=1):
                    present = gr.Checkbox(value=True, label="Tumour present", elem_id="present")
                    hemisphere = gr.Dropdown(_choices(HEMISPHERES), value="left", label="Hemisphere")
                    lobe = gr.Dropdown(_choices(LOBES), value="frontal", label="Lobe")
                    size = gr.Dropdown(_choices(SIZE_CATEGORIES), value=G.ANY, label="Size")
                    shape = gr.Dropdown(_choices(SHAPES), value=G.ANY, label="Shape")
                    intensity = gr.Dropdown(_choices(INTENSITIES), value=G.ANY, label="Intensity")
                    edema = gr.Dropdown([G.ANY, "yes", "no"], value=G.ANY, label="Edema")
                    orientation = gr.Dropdown(_choices(ORIENTATIONS), value=G.ANY, label="Orientation")
                with gr.Column(scale=2):
                    prompt = gr.Textbox(label="Prompt (rendered from the findings; editable)", lines=3,
                                        elem_id="prompt")
                    with gr.Row():
                        n = gr.Slider(1, G.MAX_IMAGES, value=4, step=1, label="Images", elem_id="n-images")
                        seed = gr.Number(value=0, precision=0, label="Seed", elem_id="seed")
                        steps = gr.Slider(1, 200, value=g.steps if g else 50, step=1, label="Steps")
                        guidance = gr.Slider(0, 15, value=g.guidance_scale if g else 4.0, step=0.5, label="Guidance")
                        sampler = gr.Dropdown(scheduler_names(), value=g.scheduler if g else "euler-ancestral",
                                              label="Sampler")
                    go = gr.Button("Generate", variant="primary", elem_id="generate-button")
                    gallery = gr.Gallery(label="Generated: what the judge reads (✗ where it differs from the request)",
                                         columns=4, elem_id="gallery", format="png")
                    chosen = gr.CheckboxGroup([], label="Images to download", elem_id="chosen")
                    download = gr.Button("Download the chosen images as a dataset")
                    dataset_file = gr.File(label="Dataset (zip)", elem_id="dataset-file")
            state = gr.State([])
            form = [present, hemisphere, lobe, size, shape, intensity, edema, orientation]

            @shown_errors
            def render_prompt(p, h, lo, s, sh, i, e, o):
                return G.prompt_for(G.findings_from_form(p, h, lo, s, sh, i, e, o))

            @shown_errors
            def run_generate(text, p, h, lo, s, sh, i, e, o, count, base_seed, n_steps, cfg_scale, sched,
                             progress=gr.Progress()):
                requested = G.findings_from_form(p, h, lo, s, sh, i, e, o)
                if text.strip() != G.prompt_for(requested):
                    requested = None  # an edited prompt: nothing to compare the judge's reading with
                progress(0, desc="loading the model")
                images = G.generate_images(models, text, requested, n=int(count), seed=int(base_seed or 0),
                                           steps=int(n_steps), guidance_scale=float(cfg_scale), scheduler=sched,
                                           progress=lambda d, t: progress(d / t, desc=f"image {d} of {t}"))
                captions = [im.caption(k) for k, im in enumerate(images)]
                labels = [f"#{k + 1}" for k in range(len(images))]
                return ([(im.shown(), c) for im, c in zip(images, captions, strict=True)], images,
                        gr.update(choices=labels, value=labels))

            @shown_errors
            def run_export(images, picked):
                idx = [int(p.lstrip("#")) - 1 for p in picked or []]
                return str(G.export_dataset(images, idx, model_id=model_id(models.require_generation().model)))

            for c in form:
                c.change(render_prompt, form, prompt)
            app.load(render_prompt, form, prompt)
            go.click(run_generate, [prompt, *form, n, seed, steps, guidance, sampler], [gallery, state, chosen])
            download.click(run_export, [state, chosen], dataset_file)

        with gr.Tab("Localise and explain", id="localise"):
            if models.localizer_dir is None:
                gr.Markdown("**No localiser.** Start the app with `--localizer DIR` (from `synthmed localize train`).")
            with gr.Row():
                with gr.Column():
                    upload = gr.File(label="Scan: PNG, JPEG, TIFF, DICOM or NIfTI", elem_id="upload")
                    slice_picker = gr.Slider(0, 1, value=0, step=1, label="Slice", visible=False, elem_id="slice")
                    localise = gr.Button("Localise", variant="primary", elem_id="localise-button")
                    explain = gr.Button("Explain (VLM)", elem_id="explain-button")
                with gr.Column():
                    heatmap = gr.Image(label="Anomaly map", type="numpy", elem_id="heatmap", format="png")
                    overlay = gr.Image(label="Predicted region", type="numpy", elem_id="overlay", format="png")
                    score = gr.Markdown(elem_id="score")
            if models.vlm is None:
                gr.Markdown("Explanations need a VLM: start the app with `--vlm hf:<model>` or `--vlm api:<model>`.")
            with gr.Row():
                texts = [gr.Textbox(label=mode, lines=8, elem_id=f"explain-{mode}")
                         for mode in ("zero-shot", "instruction", "chain-of-thought")]
            scan_state = gr.State([])
            loc_state = gr.State(None)

            @shown_errors
            def on_upload(file):
                if file is None:
                    return [], gr.update(visible=False, maximum=1, value=0)
                slices = L.read_scan(file)
                many = len(slices) > 1
                return slices, gr.update(visible=many, maximum=max(len(slices) - 1, 1), value=len(slices) // 2)

            @shown_errors
            def on_localise(slices, index):
                if not slices:
                    raise ConfigError("upload a scan first")
                image = slices[min(int(index or 0), len(slices) - 1)]
                loc = L.localize_slice(models, image)
                text = (f"**Image score {loc.image_score:.3f}** (map threshold {loc.threshold:.2f}).  \n"
                        f"Read from the map: {loc.findings_text}")
                return loc.heatmap, loc.overlay, text, (image, loc)

            @shown_errors
            def on_explain(state):
                if state is None:
                    raise ConfigError("localise the scan first")
                image, loc = state
                answers = L.explain_slice(models, image, loc)
                return [answers[m] for m in ("zero-shot", "instruction", "chain-of-thought")]

            upload.change(on_upload, upload, [scan_state, slice_picker])
            localise.click(on_localise, [scan_state, slice_picker], [heatmap, overlay, score, loc_state])
            explain.click(on_explain, loc_state, texts)

        with gr.Tab("Runs", id="runs"):
            run_path = gr.Textbox(value=str(cfg.run) if cfg.run else "", label="Run directory", elem_id="run-path")
            open_run = gr.Button("Open", elem_id="open-run")
            headline = gr.Markdown(elem_id="run-headline")
            report_file = gr.File(label="Report (self-contained HTML)", elem_id="run-report")
            grids = gr.HTML(elem_id="run-grids")

            @shown_errors
            def on_open(path):
                from synthmed.app.runs import run_overview

                if not path or not path.strip():
                    raise ConfigError("give a run directory")
                view = run_overview(Path(path.strip()))
                # Gradio serves files from its temporary folder, not from anywhere on disk: hand it a copy.
                copy = Path(tempfile.mkdtemp(prefix="synthmed-report-")) / "report.html"
                shutil.copyfile(view.report, copy)
                return view.headline_markdown, str(copy), view.grids_html

            open_run.click(on_open, run_path, [headline, report_file, grids])
            if cfg.run is not None:
                app.load(on_open, run_path, [headline, report_file, grids])
    return app


def launch(cfg: AppConfig, *, block: bool = True):
    """Serve the app on ``cfg.host:cfg.port`` (warning when bound beyond this machine).

    Returns:
        The running ``gr.Blocks`` (``.local_url``, ``.close()``) when ``block`` is False.
    """
    gr = require_gradio()
    from synthmed.study.server import LOOPBACK

    if cfg.host not in LOOPBACK:
        logger.warning("serving on %s: anyone who can reach this address can use the app and its models", cfg.host)
    app = build_app(cfg)
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    app.queue(default_concurrency_limit=1)
    app.launch(server_name=cfg.host, server_port=cfg.port, prevent_thread_lock=not block, theme=theme,
               ssr_mode=False, footer_links=[], quiet=False, show_error=True)
    return app

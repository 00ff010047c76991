"""``synthmed train lora | textual-inversion | kandinsky`` through the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from synthmed.cli.main import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def test_lora_cli_with_seed000_preset_overridden_to_a_tiny_run(tiny_sd, ft_data, tmp_path):
    out = tmp_path / "o"
    r = runner.invoke(app, ["train", "lora", "--config", str(ROOT / "configs" / "lora-sd15-seed000.yaml"),
                            "--base", str(tiny_sd), "--data", str(ft_data), "--out", str(out), "--max-steps", "2",
                            "--resolution", "32", "--rank", "2", "--grad-accum", "1", "--no-progress",
                            "--lr", "1e-3", "--noise-offset", "0.05"])
    assert r.exit_code == 0, r.output
    assert (out / "pytorch_lora_weights.safetensors").is_file()
    saved = (out / "train_config.yaml").read_text()
    # The preset's values survive where no flag overrides them.
    assert "warmup_steps: 500" in saved and "min_snr_gamma: 5.0" in saved and "train_text_encoder: true" in saved
    assert "rank: 2" in saved and "gradient_checkpointing: true" in saved and "noise_offset: 0.05" in saved
    # --keep best without a held-out split is refused in one line.
    r = runner.invoke(app, ["train", "lora", "--base", str(tiny_sd), "--data", str(ft_data), "--out",
                            str(tmp_path / "p"), "--max-steps", "2", "--keep", "best"])
    assert r.exit_code != 0 and "set val_split" in r.output + str(r.exception)


def test_textual_inversion_cli_needs_one_init_word_per_token(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "synthmed.cli.main", "train", "textual-inversion", "--base", "x/y",
                           "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--token", "<a>", "--token", "<b>",
                           "--init-word", "tumour"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "one --init-word per --token" in proc.stderr


def test_textual_inversion_cli(tiny_sd, ft_data, tmp_path):
    out = tmp_path / "ti"
    r = runner.invoke(app, ["train", "textual-inversion", "--base", str(tiny_sd), "--data", str(ft_data), "--out",
                            str(out), "--token", "<tumour>", "--init-word", "tumour", "--num-vectors", "4",
                            "--label", "tumor", "--max-steps", "2", "--resolution", "32", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert (out / "learned_embeds.safetensors").is_file()
    assert json.loads((out / "synthmed.json").read_text())["tokens"] == {"<tumour>": 4}
    from huggingface_hub import ModelCard

    card = ModelCard.load(out / "README.md")
    assert card.data.instance_prompt == "<tumour>" and card.data.base_model == str(tiny_sd)

"""Run in a subprocess that never imports synthmed: load a base, generate, load adapters, generate again.

Usage: python vanilla_check.py BASE LORA_DIR_OR_- [EMBEDDING TOKEN]...
Prints one JSON line: the mean absolute pixel change and what the pipeline holds.
"""

import json
import sys

import numpy as np
import torch
from diffusers import DiffusionPipeline

base, lora = sys.argv[1], sys.argv[2]
embeddings = sys.argv[3:]
pipe = DiffusionPipeline.from_pretrained(base)
pipe.set_progress_bar_config(disable=True)
prompt = "a medical image of a large tumour in the left hemisphere"


def run(p):
    return pipe(p, num_inference_steps=3, guidance_scale=5.0, height=32, width=32, output_type="np",
                generator=torch.Generator().manual_seed(0)).images[0]


report = {}
if lora != "-":
    before = run(prompt)
    pipe.load_lora_weights(lora)
    after = run(prompt)
    report["lora_change"] = float(np.abs(after - before).mean())
    report["adapters"] = pipe.get_list_adapters()
for path, token in zip(embeddings[::2], embeddings[1::2], strict=True):
    before = run(f"a medical image of {token}")
    pipe.load_textual_inversion(path, token=token)
    after = run(f"a medical image of {token}")
    report.setdefault("embedding_change", {})[token] = float(np.abs(after - before).mean())
    report.setdefault("token_ids", {})[token] = len(pipe.tokenizer(pipe.maybe_convert_prompt(token, pipe.tokenizer),
                                                                   add_special_tokens=False).input_ids)
report["synthmed_imported"] = any(m.startswith("synthmed") for m in sys.modules)
print(json.dumps(report))

"""Subprocess without synthmed: load a Kandinsky 3 UNet LoRA with peft into a vanilla pipeline.

Usage: python kandinsky3_check.py BASE LORA_DIR RANK
"""

import json
import sys

import numpy as np
import torch
from diffusers import Kandinsky3Pipeline
from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
from safetensors.torch import load_file

base, lora, rank = sys.argv[1], sys.argv[2], int(sys.argv[3])
pipe = Kandinsky3Pipeline.from_pretrained(base)
pipe.set_progress_bar_config(disable=True)


def run():
    return pipe("a brain mri", num_inference_steps=3, height=128, width=128, output_type="np",
                generator=torch.Generator().manual_seed(0)).images[0]


before = run()
inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=rank, target_modules=["to_q", "to_k", "to_v", "to_out.0"]),
                        pipe.unet)
state = {k.removeprefix("unet."): v for k, v in load_file(f"{lora}/pytorch_lora_weights.safetensors").items()}
result = set_peft_model_state_dict(pipe.unet, state)
after = run()
print(json.dumps({"change": float(np.abs(after - before).mean()), "unexpected": len(result.unexpected_keys),
                  "synthmed_imported": any(m.startswith("synthmed") for m in sys.modules)}))

"""Subprocess without synthmed: load Kandinsky 2.2 LoRAs into vanilla pipelines and measure the change.

Usage: python kandinsky_check.py PRIOR DECODER PRIOR_LORA_DIR DECODER_LORA_DIR
"""

import json
import sys

import numpy as np
import torch
from diffusers import KandinskyV22Pipeline, KandinskyV22PriorPipeline

prior_dir, decoder_dir, prior_lora, decoder_lora = sys.argv[1:5]
prior = KandinskyV22PriorPipeline.from_pretrained(prior_dir)
decoder = KandinskyV22Pipeline.from_pretrained(decoder_dir)
for p in (prior, decoder):
    p.set_progress_bar_config(disable=True)


def run():
    emb = prior("a brain MRI", num_inference_steps=3, generator=torch.Generator().manual_seed(0))
    img = decoder(image_embeds=emb.image_embeds, negative_image_embeds=emb.negative_image_embeds, height=32,
                  width=32, num_inference_steps=3, output_type="np", generator=torch.Generator().manual_seed(0))
    return emb.image_embeds.numpy(), img.images[0]


e0, i0 = run()
prior.prior.load_lora_adapter(prior_lora, prefix=None, weight_name="pytorch_lora_weights.safetensors")
e1, i1 = run()
decoder.unet.load_lora_adapter(decoder_lora, prefix=None, weight_name="pytorch_lora_weights.safetensors")
e2, i2 = run()
print(json.dumps({"prior_embed_change": float(np.abs(e1 - e0).mean()), "decoder_image_change":
                  float(np.abs(i2 - i1).mean()),
                  "synthmed_imported": any(m.startswith("synthmed") for m in sys.modules)}))

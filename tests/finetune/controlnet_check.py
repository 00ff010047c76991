"""Run in a subprocess that never imports synthmed: a base pipeline + a trained ControlNet, drawn around a mask.

Usage: python controlnet_check.py BASE CONTROLNET MASK_PNG
Prints one JSON line: the pipeline class, the mean absolute pixel change the ControlNet makes (scale 1 vs 0)
and the change between two masks (the given one and an empty one).
"""

import json
import sys

import diffusers
import numpy as np
import torch
from PIL import Image

base, controlnet_dir, mask_png = sys.argv[1:4]
index = json.load(open(f"{base}/model_index.json"))
cls = {"StableDiffusionPipeline": "StableDiffusionControlNetPipeline",
       "StableDiffusionXLPipeline": "StableDiffusionXLControlNetPipeline"}[index["_class_name"]]
controlnet = diffusers.ControlNetModel.from_pretrained(controlnet_dir)
pipe = getattr(diffusers, cls).from_pretrained(base, controlnet=controlnet)
pipe.set_progress_bar_config(disable=True)
mask = Image.open(mask_png).convert("RGB")
empty = Image.new("RGB", mask.size)


def run(image, scale):
    return pipe("Axial T1 contrast-enhanced MRI. A large tumour in the left hemisphere.", image=image,
                controlnet_conditioning_scale=scale, num_inference_steps=3, guidance_scale=3.0,
                height=mask.size[1], width=mask.size[0], output_type="np",
                generator=torch.Generator().manual_seed(0)).images[0]


with_mask = run(mask, 1.0)
report = {"pipeline": type(pipe).__name__, "controlnet_change": float(np.abs(with_mask - run(mask, 0.0)).mean()),
          "mask_change": float(np.abs(with_mask - run(empty, 1.0)).mean()),
          "synthmed_imported": any(m.startswith("synthmed") for m in sys.modules)}
print(json.dumps(report))

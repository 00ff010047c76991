"""The built-in stage kinds of ``synthmed run`` (one line each; the work is in the library).

The registry adds them the first time a kind is looked up.
"""

from __future__ import annotations

from synthmed.pipeline.stage_def import StageDef

_A = "synthmed.pipeline.adapters"
_R = "synthmed.results"

BUILTIN_STAGES = [
    # data
    StageDef("data.phantom", "the phantom brain-MRI benchmark (images, masks, true findings)",
             f"{_A}:PhantomStageConfig", f"{_A}:run_phantom", adapter=True, produces_dataset=True),
    StageDef("data.import", "import a folder / figshare / DICOM / NIfTI / CSV dataset",
             f"{_A}:ImportStageConfig", f"{_A}:run_import", adapter=True, inputs=("src",), produces_dataset=True),
    StageDef("caption", "caption a copy of a dataset (mask, hf:<model>, api:<model>)",
             f"{_A}:CaptionStageConfig", f"{_A}:run_caption", adapter=True, produces_dataset=True,
             inputs=("data", "captioner")),
    StageDef("paraphrase", "add checked paraphrases to a copy of a captioned dataset",
             f"{_A}:ParaphraseStageConfig", f"{_A}:run_paraphrase", adapter=True, produces_dataset=True,
             inputs=("data", "paraphraser")),
    # train
    StageDef("train.judge", "the findings judge (scores prompt adherence)",
             "synthmed.judge:JudgeTrainConfig", f"{_A}:run_judge", adapter=True, inputs=("data",)),
    StageDef("train.ldm", "a latent diffusion model from scratch (MSDM)",
             "synthmed.train.ldm:LDMTrainConfig", "synthmed.train.ldm:train_ldm",
             inputs=("data", "text_encoder", "pretrained_autoencoder"),
             resume_field="resume", overwrite_field="overwrite", auto_minutes=True),
    StageDef("train.lora", "LoRA on SD 1.5 / SDXL (optionally the text encoder)",
             "synthmed.train.finetune:LoraTrainConfig", "synthmed.train.finetune:train_lora",
             inputs=("base", "data"), resume_field="resume", overwrite_field="overwrite"),
    StageDef("train.textual-inversion", "textual-inversion embeddings for new finding tokens",
             "synthmed.train.finetune:TextualInversionConfig", "synthmed.train.finetune:train_textual_inversion",
             inputs=("base", "data"), resume_field="resume", overwrite_field="overwrite"),
    StageDef("train.kandinsky", "LoRA on the Kandinsky 2.2 prior and decoder",
             "synthmed.train.finetune.kandinsky:KandinskyTrainConfig",
             "synthmed.train.finetune.kandinsky:train_kandinsky",
             inputs=("prior", "decoder", "data", "prior_lora", "decoder_lora_init"), resume_field="resume",
             overwrite_field="overwrite"),
    StageDef("train.controlnet", "a lesion-mask ControlNet for an SD 1.5 / SDXL / LDM pipeline",
             "synthmed.train.finetune.controlnet:ControlNetTrainConfig",
             "synthmed.train.finetune.controlnet:train_controlnet", inputs=("base", "data", "controlnet"),
             resume_field="resume", overwrite_field="overwrite"),
    StageDef("train.segmenter", "a lesion segmenter (U-Net) on real image + mask pairs",
             "synthmed.segment:SegmenterTrainConfig", "synthmed.segment:train_segmenter", inputs=("data",),
             resume_field="resume", overwrite_field="overwrite"),
    # generate
    StageDef("generate", "a labelled synthetic dataset from any diffusers pipeline",
             "synthmed.generate:GenerateConfig", "synthmed.generate:generate",
             inputs=("model", "prior", "prompts_file", "loras", "embeddings", "controlnet", "masks"),
             produces_dataset=True),
    # evaluate
    StageDef("evaluate.adherence", "does each generated image show what its prompt asked for (judged)",
             "synthmed.evaluate.adherence:AdherenceConfig", f"{_A}:run_adherence", adapter=True,
             out_file="adherence.json", inputs=("fake", "judge"), result=f"{_R}:AdherenceResult"),
    StageDef("evaluate.fidelity", "Fréchet distance, KID, precision/recall, per-finding breakdown",
             "synthmed.evaluate.fidelity_run:FidelityConfig", "synthmed.evaluate.fidelity_run:evaluate_fidelity",
             out_file="fidelity.json", inputs=("real", "fake", "weights"), result=f"{_R}:FidelityResult"),
    StageDef("evaluate.downstream", "TRTR vs TSTR vs mixed classifiers on held-out real images",
             "synthmed.evaluate.downstream:DownstreamConfig", f"{_A}:run_downstream", adapter=True,
             out_file="downstream.json", inputs=("real", "synthetic"), result=f"{_R}:DownstreamResult"),
    StageDef("evaluate.privacy", "nearest-training-neighbour memorisation audit",
             "synthmed.evaluate.privacy:PrivacyConfig", "synthmed.evaluate.privacy:evaluate_privacy",
             inputs=("train", "fake", "test", "weights"), result=f"{_R}:PrivacyResult"),
    StageDef("evaluate.mask-adherence", "is each generated lesion where its mask asked (segmenter or localiser)",
             "synthmed.evaluate.mask_adherence:MaskAdherenceConfig",
             "synthmed.evaluate.mask_adherence:evaluate_mask_adherence", out_file="mask_adherence.json",
             inputs=("fake", "segmenter", "localizer", "real"), result=f"{_R}:MaskAdherenceResult"),
    StageDef("evaluate.localization-tstr", "segmenters trained on real vs synthetic image + mask pairs, tested on real",
             "synthmed.evaluate.localization_tstr:LocalizationTSTRConfig",
             "synthmed.evaluate.localization_tstr:evaluate_localization_tstr", out_file="localization_tstr.json",
             inputs=("real", "synthetic"), result=f"{_R}:LocalizationTSTRResult"),
    StageDef("evaluate.captions", "captioner accuracy per attribute against reference findings",
             "synthmed.evaluate.captions:CaptionEvalConfig", f"{_A}:run_captions_eval", adapter=True,
             out_file="captions.json", inputs=("pred", "ref"), result=f"{_R}:CaptionsResult"),
    # localise and explain
    StageDef("localize.train", "CLIP-based localiser: linear decoders on intermediate ViT layers",
             "synthmed.localize:LocalizeTrainConfig", "synthmed.localize.train:train_localizer",
             inputs=("data", "backbone"), resume_field="resume", overwrite_field="overwrite"),
    StageDef("localize.predict", "anomaly maps, overlays and findings per image",
             "synthmed.localize:LocalizePredictConfig", "synthmed.localize:predict_localization",
             inputs=("model", "data"), result=f"{_R}:LocalizationResult"),
    StageDef("explain", "a VLM explains each localisation (zero-shot / instruction / chain-of-thought)",
             "synthmed.explain:ExplainConfig", f"{_A}:run_explain", adapter=True, out_file="explanation.json",
             inputs=("data", "pred", "vlm"), result=f"{_R}:ExplainResult"),
    # people
    StageDef("study", "a blinded reader study of real vs generated images (`synthmed study serve` runs it)",
             "synthmed.study:StudyCreateConfig", "synthmed.study:create_study", inputs=("real", "fake"),
             overwrite_field="overwrite", result=f"{_R}:StudyResult", precious=("answers.sqlite",)),
]

"""A real ``CLIPTokenizer`` trained offline on a corpus of captions.

Follows the recipe in the project's offline notes: a byte-level BPE trained with the
``tokenizers`` library using CLIP's normaliser and pre-tokeniser, the ``</w>`` end-of-word
suffix and the special tokens ``<|startoftext|>`` / ``<|endoftext|>``, with every
byte-character (and its ``</w>`` form) added to the vocabulary so that no text is ever
unencodable. The result is a plain :class:`transformers.CLIPTokenizer` that saves and loads
with ``save_pretrained`` / ``AutoTokenizer.from_pretrained``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
# CLIP's pre-tokeniser pattern (contractions, letter runs, single digits, punctuation runs).
_CLIP_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"


def train_clip_tokenizer(texts: Iterable[str], *, vocab_size: int = 1000, max_length: int = 32):
    """Train a byte-level BPE on ``texts`` and wrap it as a ``CLIPTokenizer``.

    Args:
        texts: Training sentences (captions, prompts).
        vocab_size: BPE vocabulary size before the byte alphabet is added.
        max_length: ``model_max_length`` of the tokenizer (positions of the text tower).

    Returns:
        A ``transformers.CLIPTokenizer``; ``<|startoftext|>`` has id 0 and ``<|endoftext|>``
        (also the padding token) id 1.
    """
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>", unk_token=EOS))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                           normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_CLIP_SPLIT), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[BOS, EOS], end_of_word_suffix="</w>",
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(texts), trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    # Ids in a fixed order (the trainer numbers its alphabet in hash order, which changes run to run):
    # the special tokens, every byte with and without the end-of-word suffix, then each merge's result.
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    ordered = [BOS, EOS, *alphabet, *(ch + "</w>" for ch in alphabet), *(a + b for a, b in merges),
               *sorted(model["vocab"])]
    vocab: dict[str, int] = {}
    for piece in ordered:
        vocab.setdefault(piece, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length, bos_token=BOS, eos_token=EOS,
                         pad_token=EOS, unk_token=EOS)

"""Instruction tokenizer.

Without a pretrained LLM, a small byte-level BPE is trained on the dataset's instructions
with `tokenizers` and wrapped as a `transformers` fast tokenizer, so it saves and loads with
the model like any other (`tokenizer.json` in the checkpoint folder). With `llm_path`, the
Llama's own tokenizer is loaded from that directory.

Instructions are always padded to `max_text_tokens` (right side, masked in attention) so the
latent placeholders sit at fixed positions and a sample's output never depends on what else
is in its batch (the 2-process equivalence and resume tests rely on that).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch

from care.configs import ModelConfig
from care.errors import ConfigError

PAD, UNK = "<pad>", "<unk>"


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int):
    """Byte-level BPE (lower-cased) trained on `texts`; at most `vocab_size` tokens."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = sorted({t for t in texts if t})  # sorted: the tokenizer is a function of the text set
    if not texts:
        raise ConfigError("cannot train a tokenizer: the dataset has no instruction text")
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, UNK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # any byte encodes: no unknown text
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, unk_token=UNK, padding_side="right")


def load_tokenizer(path: str | Path):
    """A tokenizer saved with `save_pretrained` (ours or a Llama's), with a pad token set."""
    from transformers import AutoTokenizer

    path = Path(path).expanduser()
    if not path.is_dir():
        raise ConfigError(f"no tokenizer directory at {path}")
    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:  # Llama tokenizers ship without one; pads are masked anyway
        tok.pad_token = tok.unk_token or tok.eos_token
    tok.padding_side = "right"
    return tok


def build_tokenizer(cfg: ModelConfig, instructions: Iterable[str] | None = None):
    """The Llama's tokenizer when `llm_path` is set, else a BPE trained on `instructions`."""
    if cfg.llm_path:
        return load_tokenizer(cfg.llm_path)
    if instructions is None:
        raise ConfigError("training a tokenizer needs the dataset's instructions (or set model.llm_path)")
    return train_bpe_tokenizer(instructions, cfg.vocab_size)


class InstructionEncoder:
    """list[str] -> ids (B, L) and mask (B, L), L = max_text_tokens; cached per string.

    The cache holds at most `cache_limit` strings (more only while one batch alone has more);
    when a batch's new strings would pass the limit it is emptied first. A batch is always
    answered from its own encodings, never from what the cache happens to still hold.
    """

    cache_limit = 100_000  # instructions are few (a caption per clip for imported videos); bound it anyway

    def __init__(self, tokenizer, max_tokens: int):
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self._cache: dict[str, tuple[list[int], list[int]]] = {}

    def __call__(self, instructions: list[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        rows = {s: self._cache.get(s) for s in dict.fromkeys(instructions)}
        missing = [s for s, row in rows.items() if row is None]
        if missing:
            enc = self.tokenizer(missing, padding="max_length", truncation=True, max_length=self.max_tokens,
                                 add_special_tokens=False)
            new = {s: (ids, mask) for s, ids, mask in zip(missing, enc["input_ids"], enc["attention_mask"])}
            rows.update(new)
            if len(self._cache) + len(new) > self.cache_limit:
                self._cache.clear()
            self._cache.update(new)
        ids = torch.tensor([rows[s][0] for s in instructions], dtype=torch.long, device=device)
        mask = torch.tensor([rows[s][1] for s in instructions], dtype=torch.long, device=device)
        return ids, mask  # (B, L), (B, L)

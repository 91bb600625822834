"""InstructionEncoder: its per-string cache never changes the ids, however many instructions."""

from __future__ import annotations

import torch

from care.models.tokenizer import InstructionEncoder, train_bpe_tokenizer

CPU = torch.device("cpu")


def _uncached(tok, texts: list[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tok(texts, padding="max_length", truncation=True, max_length=max_tokens, add_special_tokens=False)
    return torch.tensor(enc["input_ids"]), torch.tensor(enc["attention_mask"])


def test_more_distinct_instructions_than_the_cache_holds():
    """Past the cache limit (a large imported video set has a caption per clip) the encoder
    still returns every batch's ids; it used to clear the cache after inserting a batch and
    then read that batch from it (KeyError mid-run)."""
    tok = train_bpe_tokenizer(["pick up the red block", "open the drawer", "push the button"], 320)
    L = 16
    enc = InstructionEncoder(tok, L)
    # the real limit (100,000 strings), crossed in the middle of a batch, then batches after it
    texts = [f"caption {i}" for i in range(100_000 + 1500)]
    batch = 1000
    got_ids, got_mask = [], []
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        chunk = chunk + chunk[:3]  # repeats inside a batch as well
        ids, mask = enc(chunk, CPU)
        assert ids.shape == mask.shape == (len(chunk), L)
        got_ids.append(ids[: -3])
        got_mask.append(mask[: -3])
        assert torch.equal(ids[-3:], ids[:3])
    ids, mask = _uncached(tok, texts, L)
    assert torch.equal(torch.cat(got_ids), ids) and torch.equal(torch.cat(got_mask), mask)
    # instructions encoded before the cache was emptied come out the same when asked again
    again_ids, again_mask = enc(texts[:5] + texts[-5:], CPU)
    ref_ids, ref_mask = _uncached(tok, texts[:5] + texts[-5:], L)
    assert torch.equal(again_ids, ref_ids) and torch.equal(again_mask, ref_mask)


def test_cache_limit_is_a_bound_not_a_precondition():
    """With a small limit, a single batch larger than the limit, and many batches after it."""
    tok = train_bpe_tokenizer(["close the drawer", "press the button from the top"], 320)
    enc = InstructionEncoder(tok, 12)
    enc.cache_limit = 10
    texts = [f"go {i}" for i in range(57)]
    ids, mask = enc(texts[:25], CPU)  # 25 new strings > limit in one call
    assert len(set(map(tuple, ids.tolist()))) == 25  # distinct ids: the comparisons below mean something
    ref_ids, ref_mask = _uncached(tok, texts[:25], 12)
    assert torch.equal(ids, ref_ids) and torch.equal(mask, ref_mask)
    for start in range(0, len(texts), 4):
        chunk = texts[start : start + 4] + texts[:2]
        ids, mask = enc(chunk, CPU)
        ref_ids, ref_mask = _uncached(tok, chunk, 12)
        assert torch.equal(ids, ref_ids) and torch.equal(mask, ref_mask)
        assert len(enc._cache) <= 25  # never more than the limit or the largest batch's new strings
    assert len(enc._cache) <= enc.cache_limit  # emptied once new strings came on top of the 25

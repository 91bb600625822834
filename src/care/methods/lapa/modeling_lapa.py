"""LAPA-style pretraining (`--method.type=lapa`): a discrete latent action, in two stages.

Stage 1 (`care lam --method.type lapa`): LatentActionQuantizer, LAPA's latent action quantiser (LAQ)

    o_t, o_{t+n} ─► patch embed ─► + pos ─► spatial blocks ─► causal temporal blocks ─► tokens of both
    (pixels/255)    LN→Linear→LN            (each frame)      (per patch, 2 frames)         │ last − first
          │               │                                                                 ▼ delta (B,P,W)
          │               │                  code_seq_len learned queries cross-attend to delta
          │               │                                                                 ▼ z (B,T,code_dim)
          │               │ o_t's tokens, detached                                  NSVQ ─► z_q
          │               ▼                                                                 │
          │     decoder blocks: self-attn, cross-attn to z_q, MLP ◄──────────────────────────┘
          │               ▼
          └──────► + pixel patches of the change ─► o_{t+n} predicted ─► MSE against o_{t+n}
                     (recon_target "change", the default; "frame", LAPA's: the patches are o_{t+n})

Stage 2 (`care pretrain --method.type lapa --method.lam DIR`): LapaModel

    policy view (o_t, instruction) ─► K placeholder states (B,K,H) ─► head ─► logits (B,T,C) ─┐
    frozen LAQ (o_t, o_{t+n}) ─► code indices (B,T) ─────────────────────────── cross-entropy ◄┘

NSVQ (Vali & Bäckström 2022, as LAPA's `nsvq.py`): in training the quantised vector is
z + ||z − e_k|| · u/||u|| with u ~ N(0, I): the quantisation error is replaced by noise of the
same size, so the gradient reaches the encoder unchanged and the codebook learns through the
norm (no commitment or codebook loss). At evaluation it is the nearest code e_k itself.

Where this departs from LAPA's code, and why:
- sizes: a few narrow blocks (tiny: width 128, 2 spatial, 1 temporal, 2 decoder) instead of
  8 + 8 + 8 at width 1024: the budget is 2 CPU cores (configs/lam/lapa_tiny.yaml);
- positions: learned absolute positions instead of a continuous relative position bias;
- pooling: the change (last − first encoder tokens, per patch) is pooled into `code_seq_len`
  tokens by learned queries cross-attending to it; LAPA projects each frame's tokens, runs a
  small CNN over the patch grid and subtracts afterwards. The difference is taken first (as
  CoMo, and our VLM's inverse view, do) so that a pair without change gives a delta of
  exactly 0 and hence one "no-op" code, and the queries can pick where the change happened;
- decoder target: by default the change o_{t+n} − o_t (`recon_target`, see LapaConfig);
- codebook: it starts on encoder outputs of the first batch (`prepare_training`), not N(0, 1):
  at init z varies little across samples (1.6, tiny, MT10) and sits far from random codes
  (6.9), so the substituted noise would drown z until the first replacement;
- dead codes: codes unused since the last replacement take encoder outputs of the last batch
  (LAPA copies used codes plus 1e-12 noise, which starts the new code on top of an old one);
- stage 2: one linear head on the K placeholder states predicts all T codes at once, instead
  of LAPA's autoregressive code tokens from the LM head: fine-tuning's action head reads the
  same placeholder states, so pretraining shapes exactly what fine-tuning reads.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from care.configs import ModelConfig
from care.errors import ConfigError
from care.methods.lam import LatentActionModel
from care.methods.lapa.configuration_lapa import LapaConfig
from care.methods.two_stage import TwoStageModel
from care.models.blocks import MLP, Attention, Block, CrossBlock, LatentContext, init_linear, patchify, unpatchify


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized() \
        and torch.distributed.get_world_size() > 1


# ----------------------------------------------------------------------------------------
# small parts
# ----------------------------------------------------------------------------------------


class PatchEmbed(nn.Module):
    """Pixels in [0, 1] (B,3,S,S) -> patch tokens (B, P, W): LayerNorm -> Linear -> LayerNorm on
    flattened pixel patches, as LAPA's `to_patch_emb_first_frame`."""

    def __init__(self, patch: int, width: int):
        super().__init__()
        self.patch = patch
        d = 3 * patch * patch
        self.ln_in = nn.LayerNorm(d)
        self.proj = nn.Linear(d, width)
        self.ln_out = nn.LayerNorm(width)
        init_linear(self.proj)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.ln_out(self.proj(self.ln_in(patchify(pixels, self.patch))))  # (B, P, W)


class NSVQ(nn.Module):
    """Noise-substitution vector quantisation (Vali & Bäckström 2022; LAPA's `nsvq.py`).

    Training (noisy=True): z_q = z + ||z − e_k|| · u/||u||, u ~ N(0, I), k = argmin_j ||z − e_j||.
    The noise has the size of the quantisation error, so the decoder learns to live with it;
    dz_q/dz is the identity, so the encoder gets the decoder's gradient unchanged; the codebook
    gets its own gradient through ||z − e_k|| (the noisier the code, the larger the loss).
    Evaluation (noisy=False): z_q = e_k.
    """

    def __init__(self, num_codes: int, dim: int):
        super().__init__()
        # N(0, 1), LAPA's 'normal' init: z comes out of a LayerNorm and a fan-in projection, so its
        # entries are ~N(0, 1) too; before training, LatentActionQuantizer.prepare_training moves
        # every code onto an encoder output of the first batch
        self.codebook = nn.Parameter(torch.randn(num_codes, dim))

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, d) -> index of the nearest code (N,) long."""
        codes = self.codebook.float()
        d2 = z.pow(2).sum(1, keepdim=True) - 2 * z @ codes.t() + codes.pow(2).sum(1)[None]  # (N, C)
        return d2.argmin(dim=1)

    def forward(self, z: torch.Tensor, noisy: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """z (..., d) -> (z_q (..., d) float, indices (...) long)."""
        shape = z.shape
        flat = z.reshape(-1, shape[-1]).float()  # (N, d): distances in float32 even under autocast
        idx = self.nearest(flat)
        hard = self.codebook[idx].float()  # (N, d)
        if not noisy:
            return hard.view(shape), idx.view(shape[:-1])
        u = torch.randn_like(flat)
        err = ((flat - hard).pow(2).sum(1, keepdim=True) + 1e-12).sqrt()  # ||z − e_k||; eps: finite grad at 0
        zq = flat + err * u / u.norm(dim=1, keepdim=True)  # (N, d)
        return zq.view(shape), idx.view(shape[:-1])


def perplexity_of(counts: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of code usage counts (C,): 1 = one code, C = all used equally."""
    p = counts.float() / counts.sum().clamp(min=1)
    return torch.exp(-(p * torch.log(p.clamp(min=1e-12))).sum())


# ----------------------------------------------------------------------------------------
# stage 1: the latent action quantiser
# ----------------------------------------------------------------------------------------


class LatentActionQuantizer(LatentActionModel):
    """LAPA's LAQ on frame pairs (module docstring): `care lam --method.type lapa`."""

    def __init__(self, cfg: ModelConfig, method: LapaConfig):
        super().__init__(cfg, method)
        S, p, W = cfg.image_size, method.lam_patch_size, method.lam_width
        if S % p:
            raise ConfigError(f"method.lam_patch_size ({p}) must divide model.image_size ({S})")
        T, C, Dc = method.code_seq_len, method.codebook_size, method.code_dim
        P = (S // p) ** 2
        self.patch = p

        # encoder
        self.embed = PatchEmbed(p, W)
        self.pos = nn.Parameter(torch.empty(P, W))  # spatial positions, both frames
        self.spatial = nn.ModuleList(Block(W, method.lam_heads) for _ in range(method.lam_spatial_layers))
        self.temporal = nn.ModuleList(Block(W, method.lam_heads, causal=True)
                                      for _ in range(method.lam_temporal_layers))
        # pooling the change into T tokens, then the code vectors
        self.queries = nn.Parameter(torch.empty(T, W))
        self.delta_pos = nn.Parameter(torch.empty(P, W))  # where in the image a change is
        self.ln_q = nn.LayerNorm(W)
        self.pool_attn = Attention(W, method.lam_heads)
        self.ln_pool = nn.LayerNorm(W)
        self.pool_mlp = MLP(W)
        self.ln_z = nn.LayerNorm(W)
        self.to_code = nn.Linear(W, Dc)
        self.vq = NSVQ(C, Dc)
        # decoder
        self.dec_pos = nn.Parameter(torch.empty(P, W))
        self.code_context = LatentContext(Dc, T, W)  # code vectors -> keys/values, with their position
        self.decoder = nn.ModuleList(CrossBlock(W, method.lam_heads) for _ in range(method.lam_decoder_layers))
        self.ln_out = nn.LayerNorm(W)
        self.to_pixels = nn.Linear(W, 3 * p * p)

        # positions at the scale of the LayerNorm-ed patch tokens they are added to (unit entries),
        # so attention tells places apart from the first step
        for pos in (self.pos, self.delta_pos, self.dec_pos):
            nn.init.normal_(pos, std=1.0)
        nn.init.normal_(self.queries, std=1.0)
        init_linear(self.to_code)  # fan-in: z ~ N(0, 1) entries, the codebook's scale
        nn.init.zeros_(self.to_pixels.weight)  # "change": start at "nothing moves"; "frame": at mid-grey
        nn.init.constant_(self.to_pixels.bias, 0.0 if method.recon_target == "change" else 0.5)

        # optimiser steps taken (the dead-code schedule), code usage since the last replacement,
        # codes replaced so far: buffers, so checkpoints resume them
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("code_usage", torch.zeros(C, dtype=torch.long))
        self.register_buffer("codes_replaced", torch.zeros((), dtype=torch.long))
        self._last_z: torch.Tensor | None = None  # the last training batch's z (N, Dc), no grad
        self._last_counts: torch.Tensor | None = None  # its code counts (C,)
        self._checkpointing = False

    # --- pieces ---
    @staticmethod
    def pixels(images: torch.Tensor) -> torch.Tensor:
        """uint8 (B,3,S,S) -> float in [0, 1]."""
        return images.float() / 255.0

    def _run(self, block: nn.Module, *args) -> torch.Tensor:
        if self._checkpointing and self.training:
            return torch.utils.checkpoint.checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def encode(self, obs_px: torch.Tensor, fut_px: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixels in [0, 1] (B,3,S,S) x2 -> z (B, T, code_dim) before quantisation, and o_t's patch
        tokens (B, P, W) (the decoder's input)."""
        B = obs_px.shape[0]
        tokens = self.embed(torch.cat([obs_px, fut_px], dim=0))  # (2B, P, W)
        P, W = tokens.shape[1:]
        x = tokens + self.pos
        for block in self.spatial:
            x = self._run(block, x)  # (2B, P, W): each frame on its own
        x = x.view(2, B, P, W).permute(1, 2, 0, 3).reshape(B * P, 2, W)  # (B·P, 2, W): a frame pair per place
        for block in self.temporal:
            x = self._run(block, x)  # causal: o_t's tokens see only o_t
        x = x.view(B, P, 2, W)
        delta = x[:, :, 1] - x[:, :, 0]  # (B, P, W): exactly 0 where nothing changed
        q = self.queries.unsqueeze(0).expand(B, -1, -1)  # (B, T, W)
        q = q + self.pool_attn(self.ln_q(q), delta + self.delta_pos)  # no LayerNorm on delta: it would blow up ~0
        q = q + self.pool_mlp(self.ln_pool(q))
        z = self.to_code(self.ln_z(q))  # (B, T, code_dim)
        return z, tokens[:B]

    def decode(self, first_tokens: torch.Tensor, zq: torch.Tensor, obs_px: torch.Tensor) -> torch.Tensor:
        """o_t's patch tokens (B,P,W) + quantised codes (B,T,Dc) -> predicted o_{t+n} pixels (B,3,S,S)."""
        x = first_tokens.detach() + self.dec_pos  # detached, as LAPA: the decoder cannot shape the encoder's input
        ctx = self.code_context(zq)  # (B, T, W)
        for block in self.decoder:
            x = self._run(block, x, ctx)  # (B, P, W)
        out = unpatchify(self.to_pixels(self.ln_out(x)), self.patch)  # (B, 3, S, S)
        return obs_px + out if self.method.recon_target == "change" else out

    def reconstruct(self, obs: torch.Tensor, future_obs: torch.Tensor, noisy: bool = False) -> dict:
        """Everything forward and diagnostics need: pixels, z, quantised codes, indices, prediction."""
        obs_px, fut_px = self.pixels(obs), self.pixels(future_obs)
        z, first = self.encode(obs_px, fut_px)
        zq, idx = self.vq(z, noisy=noisy)
        pred = self.decode(first, zq.to(first.dtype), obs_px)
        return {"obs_px": obs_px, "fut_px": fut_px, "z": z, "zq": zq, "idx": idx, "first": first, "pred": pred}

    # --- training ---
    def forward(self, batch: dict) -> dict:
        """batch: obs/future_obs uint8 (B,3,S,S). Returns the loss and scalars to log."""
        r = self.reconstruct(batch["obs"], batch["future_obs"], noisy=self.training)
        loss = (r["pred"].float() - r["fut_px"]).pow(2).mean()
        counts = torch.bincount(r["idx"].flatten(), minlength=self.method.codebook_size)  # (C,)
        if self.training:  # for the dead-code replacement after this step's optimiser update
            self._last_z = r["z"].detach().reshape(-1, r["z"].shape[-1]).float()
            self._last_counts = counts
        return {"loss": loss, "loss_recon": loss.detach(), "perplexity": perplexity_of(counts),
                "codes_used": (counts > 0).sum().float()}

    @torch.no_grad()
    def prepare_training(self, batch: dict) -> dict[str, float]:
        """Before the first step (same batch in every process): the codebook starts on encoder
        outputs z of that batch. From N(0, 1) codes, NSVQ's noise (the distance to the nearest
        code) drowns what z says until the first dead-code replacement does this anyway: at the
        tiny init on MT10 clips, z varies by 1.6 across samples (mean distance to its token's
        mean) while the nearest N(0, 1) code is 6.9 away. Returns the batch's copy error."""
        obs_px, fut_px = self.pixels(batch["obs"]), self.pixels(batch["future_obs"])
        z, _ = self.encode(obs_px, fut_px)
        self._last_z = z.reshape(-1, z.shape[-1]).float()
        self.code_usage.zero_()
        self.replace_dead_codes()  # every code is unused: all take encoder outputs
        self.codes_replaced.zero_()
        self._last_z = None
        return {"copy_mse": float((obs_px - fut_px).pow(2).mean())}

    def param_groups(self, optim) -> dict[str, dict]:
        # weight decay would pull every code towards 0, the mean of nothing the encoder produces
        return {"vq.codebook": {"lr": optim.lr}}

    def enable_gradient_checkpointing(self) -> None:
        self._checkpointing = True

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """Count this step's codes (summed over processes); every `dead_code_every` steps up to
        `dead_code_until`, replace the codes unused since the last replacement."""
        self.num_updates += 1
        if self._last_counts is not None:
            counts = self._last_counts.clone()
            if _distributed():
                torch.distributed.all_reduce(counts)  # every process keeps the same usage
            self.code_usage += counts
            self._last_counts = None
        m, step = self.method, int(self.num_updates)
        if m.dead_code_every > 0 and step % m.dead_code_every == 0 and step <= m.dead_code_until:
            self.replace_dead_codes()

    @torch.no_grad()
    def replace_dead_codes(self) -> int:
        """Codes unused since the last replacement become random encoder outputs z of the last
        training batch (the same in every process: process 0's are broadcast). Returns how many."""
        dead = (self.code_usage == 0).nonzero().flatten()
        n = int(dead.numel())
        if n and self._last_z is not None:
            pool = self._last_z  # (N, Dc)
            pick = (torch.randperm(pool.shape[0], device=pool.device)[:n] if pool.shape[0] >= n
                    else torch.randint(pool.shape[0], (n,), device=pool.device))
            self.vq.codebook.data[dead] = pool[pick].to(self.vq.codebook.dtype)
            if _distributed():
                torch.distributed.broadcast(self.vq.codebook.data, src=0)
            self.codes_replaced += n
        self.code_usage.zero_()
        return n

    # --- what stage 2 and the probes read ---
    @torch.no_grad()
    def latent(self, obs: torch.Tensor, future_obs: torch.Tensor) -> torch.Tensor:
        """The hard quantised code vectors (B, code_seq_len, code_dim): LAPA's latent action."""
        z, _ = self.encode(self.pixels(obs), self.pixels(future_obs))
        return self.vq(z, noisy=False)[0]

    @torch.no_grad()
    def targets(self, obs: torch.Tensor, future_obs: torch.Tensor) -> torch.Tensor:
        """The code indices (B, code_seq_len) long: what stage 2 predicts from o_t."""
        z, _ = self.encode(self.pixels(obs), self.pixels(future_obs))
        return self.vq(z, noisy=False)[1]

    # --- validation ---
    @torch.no_grad()
    def diagnostics(self, batches) -> dict[str, float]:
        """Held-out reconstruction against "next = current", with the codes shuffled across the
        batch (a decoder that ignores the codes scores the same), and code usage over the whole set."""
        recon = copy = shuffled = 0.0
        n = n_shuffled = 0
        counts = torch.zeros(self.method.codebook_size, dtype=torch.long)
        for batch in batches:
            r = self.reconstruct(batch["obs"], batch["future_obs"], noisy=False)
            B = r["fut_px"].shape[0]
            recon += float((r["pred"].float() - r["fut_px"]).pow(2).mean(dim=(1, 2, 3)).sum())
            copy += float((r["obs_px"] - r["fut_px"]).pow(2).mean(dim=(1, 2, 3)).sum())
            if B > 1:
                pred = self.decode(r["first"], r["zq"].roll(1, dims=0).to(r["first"].dtype), r["obs_px"])
                shuffled += float((pred.float() - r["fut_px"]).pow(2).mean(dim=(1, 2, 3)).sum())
                n_shuffled += B
            counts += torch.bincount(r["idx"].flatten().cpu(), minlength=self.method.codebook_size)
            n += B
        if n == 0:
            return {}
        used = int((counts > 0).sum())
        out = {"recon_mse": recon / n, "copy_mse": copy / n, "recon_ratio": recon / max(copy, 1e-12),
               "perplexity": float(perplexity_of(counts)), "codes_used": float(used),
               "code_usage": used / self.method.codebook_size, "codes_replaced": float(self.codes_replaced)}
        if n_shuffled:
            out["recon_mse_shuffled"] = shuffled / n_shuffled
        return out

    def brief(self, metrics: dict) -> dict:
        return {k: metrics[k] for k in ("recon_ratio", "perplexity", "codes_used") if k in metrics}


# ----------------------------------------------------------------------------------------
# stage 2: the latent VLM predicts the frozen LAQ's codes
# ----------------------------------------------------------------------------------------


class CodeHead(nn.Module):
    """Placeholder states (B,K,H) -> code logits (B,T,C): a LayerNorm per state, then one linear
    layer over the K states flattened (LAPA reads its codes off the LM head, a linear layer too)."""

    def __init__(self, num_latents: int, hidden: int, code_seq_len: int, codebook_size: int):
        super().__init__()
        self.T, self.C = code_seq_len, codebook_size
        self.ln = nn.LayerNorm(hidden)
        self.out = nn.Linear(num_latents * hidden, code_seq_len * codebook_size)
        nn.init.zeros_(self.out.weight)  # uniform over the codes at init: the loss starts at log C
        nn.init.zeros_(self.out.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        B = hidden.shape[0]
        return self.out(self.ln(hidden).flatten(1)).view(B, self.T, self.C)  # (B, T, C)


class LapaModel(TwoStageModel):
    """Stage 2: the latent VLM's policy view classifies the code indices of a frozen LAQ."""

    config_class = LapaConfig

    def __init__(self, cfg: ModelConfig, method: LapaConfig, tokenizer):
        super().__init__(cfg, method, tokenizer)
        self.head = CodeHead(cfg.num_latents, self.vlm.hidden_size, method.code_seq_len, method.codebook_size)

    # --- forward ---
    @torch.no_grad()
    def code_targets(self, obs: torch.Tensor, future_obs: torch.Tensor) -> torch.Tensor:
        """The frozen LAQ's code indices (B, T), in float32 whatever the autocast (an argmin)."""
        with torch.autocast(obs.device.type, enabled=False):
            return self.lam.targets(obs, future_obs)

    def logits(self, obs: torch.Tensor, instructions: list[str]) -> torch.Tensor:
        """Policy view (o_t, instruction) -> code logits (B, T, C)."""
        _, hidden = self.vlm.encode(obs, instructions)  # (B, K, H)
        return self.head(hidden)

    def forward(self, batch: dict) -> dict:
        """batch: obs/future_obs uint8 (B,3,S,S), instruction list[str]. Returns loss + scalars."""
        target = self.code_targets(batch["obs"], batch["future_obs"])  # (B, T)
        logits = self.logits(batch["obs"], batch["instruction"]).float()  # (B, T, C)
        ce = F.cross_entropy(logits.flatten(0, 1), target.flatten(), label_smoothing=self.method.label_smoothing)
        acc = (logits.argmax(-1) == target).float().mean()
        return {"loss": ce, "loss_ce": ce.detach(), "code_acc": acc.detach()}

    # --- validation ---
    @torch.no_grad()
    def diagnostics(self, batches) -> dict[str, float]:
        """Held-out code accuracy and cross-entropy, against predicting each position's most
        frequent held-out code (accuracy) and the held-out code frequencies (cross-entropy)."""
        ce = correct = 0.0
        targets = []
        for batch in batches:
            target = self.code_targets(batch["obs"], batch["future_obs"])
            logits = self.logits(batch["obs"], batch["instruction"]).float()
            ce += float(F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="sum"))
            correct += float((logits.argmax(-1) == target).sum())
            targets.append(target.cpu())
        if not targets:
            return {}
        t = torch.cat(targets)  # (N, T)
        C = self.method.codebook_size
        counts = torch.stack([torch.bincount(t[:, j], minlength=C) for j in range(t.shape[1])])  # (T, C)
        p = counts.float() / t.shape[0]
        return {"code_acc": correct / t.numel(), "code_acc_majority": float(counts.max(1).values.sum()) / t.numel(),
                "ce": ce / t.numel(), "ce_marginal": float(-(p * p.clamp(min=1e-12).log()).sum(1).mean())}

    def brief(self, metrics: dict) -> dict:
        return {k: metrics[k] for k in ("code_acc", "code_acc_majority", "ce") if k in metrics}

"""CoMo-style pretraining (`--method.type=como`): a continuous latent motion, in two stages.

Stage 1, MotionQFormer (`care lam --method.type como`), a LatentActionModel:

    o_t, o_{t+n} ─► encoder (VisionBackbone) ─► F_t, F_{t+n}  (B,P,D)
                    [LN(F_t), LN(F_{t+n}) − LN(F_t)] ─► Linear ─► frame tokens (B,P,Wq)
    num_queries learned queries ─► L × [self-attn, cross-attn to frame tokens, MLP] ─► Linear ─► z (B,Q,Dm)
    o_t pixel patches ─► embed ─► L × [self-attn, cross-attn to z, MLP] ─► zero-init read-out
                    ─► Δ pixels; prediction = o_t + Δ;  loss = MSE(prediction, o_{t+n})  (pixels in [0, 1])

Stage 2, ComoModel (`care pretrain --method.type como --method.lam DIR`), a TwoStageModel:

    o_t + instruction ─► latent VLM, policy view ─► hidden (B,K,H) ─► flatten ─► Linear ─► ẑ (B,Q,Dm)
    (o_t, o_{t+n}) ─► frozen stage-1 MotionQFormer ─► z ─► z-score per dimension ─► target
    loss = MSE(ẑ, target): the latents are pseudo-labels, as CoMo co-trains its policy on them

CoMo (arXiv 2505.17006; reference design §9) reads frozen MAE ViT-L features; here the
encoder is the VLM's tower architecture (`model.vision_towers`), trained by the reconstruction
from scratch ("online") or frozen when pretrained (`method.encoder`). The early temporal
difference [F_t, F_{t+n} − F_t] is CoMo's. The features are layer-normalised (no affine) before
the difference, so the two halves enter the projection at one scale whatever the towers' scale.

Written nanoGPT-style: small parts first, shapes in comments, explicit init. Every trainable
parameter is in the graph of every step (DDP without find_unused_parameters); key projections
have no bias (softmax ignores it: its gradient would be float noise that Adam amplifies).
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from care.configs import ModelConfig
from care.errors import ConfigError
from care.methods.como.configuration_como import ComoConfig
from care.methods.lam import LatentActionModel
from care.methods.two_stage import TwoStageModel
from care.models.blocks import CrossBlock, patchify
from care.models.vision import VisionBackbone

# ----------------------------------------------------------------------------------------
# parts
# ----------------------------------------------------------------------------------------


def init_weights(module: nn.Module, num_layers: int) -> None:
    """Explicit init: Linear ~ N(0, 1/fan_in) (activations stay O(1)), biases 0, LayerNorm (1, 0);
    residual branch outputs (attention `*.proj`, MLP `*.fc2`) scaled down by sqrt(3·layers) (nanoGPT's c_proj rule,
    3 branches per block), so the residual stream does not grow with depth."""
    for name, m in module.named_modules():
        if isinstance(m, nn.Linear):
            std = m.in_features ** -0.5
            if name.endswith((".proj", ".fc2")):
                std /= math.sqrt(3 * num_layers)
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B,3,S,S) -> float in [0, 1]: the pixel space the reconstruction is measured in."""
    return images.float() / 255.0


# ----------------------------------------------------------------------------------------
# stage 1: the Motion Q-Former and its forward model
# ----------------------------------------------------------------------------------------


class MotionQFormer(LatentActionModel):
    """Stage 1 (`care lam --method.type como`): (o_t, o_{t+n}) -> continuous latent motion z
    (B, num_queries, motion_dim), trained by rebuilding o_{t+n}'s pixels from o_t and z."""

    def __init__(self, cfg: ModelConfig, method: ComoConfig):
        super().__init__(cfg, method)
        p = method.decoder_patch_size
        if cfg.image_size % p:
            raise ConfigError(f"method.decoder_patch_size ({p}) must divide model.image_size ({cfg.image_size})")
        self.num_queries = method.num_queries or cfg.num_latents  # Q
        self.motion_dim = method.motion_dim or cfg.latent_dim  # Dm
        Wq, Wd = method.qformer_width, method.decoder_width

        # --- encoder: the towers of model.vision_towers; frozen or trained by the reconstruction ---
        self.vision = VisionBackbone(cfg)
        D, P = self.vision.feature_dim, self.vision.num_patches
        self.frozen_encoder = method.encoder == "frozen"
        if self.frozen_encoder:
            if not (cfg.siglip.path or cfg.dino.path):
                warnings.warn("method.encoder='frozen' with from-scratch towers: the Q-Former reads random "
                              "features (use 'online', or pretrained towers via model.dino.path / siglip.path)",
                              stacklevel=2)
            self.vision.requires_grad_(False)

        # --- Motion Q-Former ---
        self.token_proj = nn.Linear(2 * D, Wq)  # [F_t, F_{t+n} − F_t] -> Wq
        self.token_pos = nn.Parameter(torch.empty(1, P, Wq))
        self.queries = nn.Parameter(torch.empty(1, self.num_queries, Wq))
        self.qformer = nn.ModuleList([CrossBlock(Wq, method.qformer_heads, norm_context=True, init=False) for _ in range(method.qformer_layers)])
        self.qformer_ln = nn.LayerNorm(Wq)
        self.motion_proj = nn.Linear(Wq, self.motion_dim)

        # --- forward model ---
        self.grid = cfg.image_size // p
        self.patch_embed = nn.Linear(p * p * 3, Wd)
        self.patch_pos = nn.Parameter(torch.empty(1, self.grid ** 2, Wd))
        self.latent_embed = nn.Linear(self.motion_dim, Wd)
        self.latent_pos = nn.Parameter(torch.empty(1, self.num_queries, Wd))
        self.decoder = nn.ModuleList([CrossBlock(Wd, method.decoder_heads, norm_context=True, init=False) for _ in range(method.decoder_layers)])
        self.decoder_ln = nn.LayerNorm(Wd)
        self.readout = nn.Linear(Wd, p * p * 3)

        # --- init (the towers keep their own) ---
        init_weights(self.qformer, method.qformer_layers)
        init_weights(self.decoder, method.decoder_layers)
        for lin in (self.token_proj, self.motion_proj, self.patch_embed, self.latent_embed):
            init_weights(lin, 1)
        nn.init.normal_(self.queries, std=1.0)  # distinct queries: their identity is all the Q-Former starts from
        for pos in (self.token_pos, self.patch_pos, self.latent_pos):
            nn.init.normal_(pos, std=0.1)  # a location signal below the O(1) content of the tokens
        # zero read-out: the forward model starts at "o_{t+n} = o_t" (the copy baseline)
        nn.init.zeros_(self.readout.weight)
        nn.init.zeros_(self.readout.bias)

    # --- the two halves ---
    def features(self, obs: torch.Tensor, future_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (B,3,S,S) x2 -> layer-normalised encoder features F_t, F_{t+n} (B, P, D)."""
        B = obs.shape[0]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen_encoder):
            both = self.vision(torch.cat([obs, future_obs], dim=0))  # one tower pass: (2B, P, D)
        both = F.layer_norm(both.float(), both.shape[-1:])
        return both[:B], both[B:]

    def encode(self, obs: torch.Tensor, future_obs: torch.Tensor) -> torch.Tensor:
        """The Motion Q-Former: uint8 (B,3,S,S) x2 -> z (B, Q, Dm)."""
        f_t, f_n = self.features(obs, future_obs)  # (B, P, D) x2
        tokens = self.token_proj(torch.cat([f_t, f_n - f_t], dim=-1)) + self.token_pos  # (B, P, Wq)
        q = self.queries.expand(obs.shape[0], -1, -1)  # (B, Q, Wq)
        for block in self.qformer:
            q = block(q, tokens)  # (B, Q, Wq)
        return self.motion_proj(self.qformer_ln(q))  # (B, Q, Dm)

    def decode(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The forward model: uint8 o_t (B,3,S,S) and z (B,Q,Dm) -> predicted o_{t+n} pixel
        patches (B, N, p·p·3), in [0, 1] units (o_t's patches + the predicted change)."""
        x = patchify(to_unit(obs), self.method.decoder_patch_size, channels_last=True)  # (B, N, p·p·3)
        h = self.patch_embed(2.0 * x - 1.0) + self.patch_pos  # (B, N, Wd)
        c = self.latent_embed(z.to(h.dtype)) + self.latent_pos  # (B, Q, Wd)
        for block in self.decoder:
            h = block(h, c)  # (B, N, Wd)
        return x + self.readout(self.decoder_ln(h))  # (B, N, p·p·3)

    def recon_errors(self, obs: torch.Tensor, future_obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Per-sample MSE (B,) of the prediction of o_{t+n} from o_t and z."""
        target = patchify(to_unit(future_obs), self.method.decoder_patch_size, channels_last=True)
        return (self.decode(obs, z).float() - target).pow(2).mean(dim=(1, 2))

    # --- training ---
    def forward(self, batch: dict) -> dict:
        """batch: obs/future_obs uint8 (B,3,S,S). Returns the loss and the scalars to log."""
        obs, fut = batch["obs"], batch["future_obs"]
        loss = self.recon_errors(obs, fut, self.encode(obs, fut)).mean()
        return {"loss": loss, "loss_recon": loss.detach()}

    # --- what stage 2 and the probes read ---
    @torch.no_grad()
    def latent(self, obs: torch.Tensor, future_obs: torch.Tensor) -> torch.Tensor:
        """The latent motion z (B, Q, Dm)."""
        return self.encode(obs, future_obs)

    @torch.no_grad()
    def targets(self, obs: torch.Tensor, future_obs: torch.Tensor) -> torch.Tensor:
        """What stage 2 regresses: z itself (B, Q, Dm); ComoModel z-scores it."""
        return self.encode(obs, future_obs)

    # --- the loop's hooks ---
    @torch.no_grad()
    def diagnostics(self, batches) -> dict[str, float]:
        """Held-out: does z carry the motion?

            recon_mse            the forward model's pixel MSE on o_{t+n} (pixels in [0, 1])
            copy_mse             the "o_{t+n} = o_t" baseline (where the zero-init read-out starts)
            recon_ratio          recon_mse / copy_mse: below 1 = reconstruction beats copying o_t
            recon_mse_shuffled   with z of another held-out clip: if it does not rise, z carries nothing
            recon_shuffled_ratio recon_mse_shuffled / recon_mse
            z_spread, z_rms, z_spread_rel   std of z across samples (mean over dims), its rms, their ratio

        The shuffle is a seeded random derangement over all held-out clips, not a roll within a
        batch: the held-out batches are consecutive clips, and a neighbour's z is nearly the same.
        """
        obs, fut, zs = [], [], []
        for batch in batches:
            obs.append(batch["obs"])
            fut.append(batch["future_obs"])
            zs.append(self.encode(batch["obs"], batch["future_obs"]).float())
        if not zs:
            return {}
        sizes = [o.shape[0] for o in obs]
        z = torch.cat(zs)  # (N, Q, Dm)
        N = z.shape[0]
        order = torch.randperm(N, generator=torch.Generator().manual_seed(0)).to(z.device)
        shuffled = torch.empty_like(z)
        shuffled[order] = z[order.roll(-1)]  # a random cyclic derangement: nobody keeps its own z
        s = {"recon": 0.0, "copy": 0.0, "shuffled": 0.0}
        for o, f, zz, zsh in zip(obs, fut, z.split(sizes), shuffled.split(sizes)):
            s["recon"] += self.recon_errors(o, f, zz).sum().item()
            s["shuffled"] += self.recon_errors(o, f, zsh).sum().item()
            s["copy"] += (to_unit(f) - to_unit(o)).pow(2).mean(dim=(1, 2, 3)).sum().item()
        out = {"samples": float(N), "recon_mse": s["recon"] / N, "copy_mse": s["copy"] / N,
               "recon_mse_shuffled": s["shuffled"] / N}
        out["recon_ratio"] = out["recon_mse"] / max(out["copy_mse"], 1e-12)
        out["recon_shuffled_ratio"] = out["recon_mse_shuffled"] / max(out["recon_mse"], 1e-12)
        flat = z.flatten(1)  # (N, Q·Dm)
        out["z_spread"] = flat.std(dim=0).mean().item() if N > 1 else 0.0
        out["z_rms"] = flat.pow(2).mean().sqrt().item()
        out["z_spread_rel"] = out["z_spread"] / max(out["z_rms"], 1e-12)
        return out

    def brief(self, metrics: dict) -> dict:
        return {k: metrics[k] for k in ("recon_ratio", "recon_shuffled_ratio", "z_spread_rel") if k in metrics}


# ----------------------------------------------------------------------------------------
# stage 2: the latent VLM regresses the frozen stage-1 latent
# ----------------------------------------------------------------------------------------


class ComoModel(TwoStageModel):
    """Stage 2 (`care pretrain --method.type como --method.lam DIR`): the latent VLM's policy
    view (o_t + instruction) predicts the frozen stage-1 latent z of (o_t, o_{t+n}).

    Targets are z-scored per dimension (each of the Q·Dm numbers) with a mean and std computed
    once, in `prepare_training`, on the first global batch (the same in every process), and kept
    as buffers: the stage-1 model is frozen, so its latents' distribution does not drift and
    running statistics would only move the target under the model; buffers make a reload and a
    resume exact. Without z-scoring the loss is dominated by the few widest dimensions of z.

    The frozen stage-1 model, its loading and saving are TwoStageModel's. Fine-tuning reads
    `.vlm` only (care.methods.registry.load_pretrained_vlm).
    """

    load_stage1_first = True  # CoMo's runs were made with the stage-1 model loaded first (TwoStageModel)
    config_class = ComoConfig

    def __init__(self, cfg: ModelConfig, method: ComoConfig, tokenizer):
        super().__init__(cfg, method, tokenizer)
        Q, Dm = self.lam.num_queries, self.lam.motion_dim
        self.target_shape = (Q, Dm)
        K, H = cfg.num_latents, self.vlm.hidden_size
        # policy-view placeholder states (B, K·H) -> ẑ (B, Q·Dm); zero-init: starts at the mean latent
        self.latent_head = nn.Linear(K * H, Q * Dm)
        nn.init.zeros_(self.latent_head.weight)
        nn.init.zeros_(self.latent_head.bias)
        self.register_buffer("target_mean", torch.zeros(Q, Dm))
        self.register_buffer("target_std", torch.ones(Q, Dm))
        self.register_buffer("target_stats_ready", torch.zeros((), dtype=torch.bool))

    # --- targets ---
    @torch.no_grad()
    def set_target_stats(self, batch: dict) -> dict[str, float]:
        z = self.lam.targets(batch["obs"], batch["future_obs"]).float()  # (B, Q, Dm)
        mean = z.mean(dim=0)
        var = z.var(dim=0, unbiased=False) if z.shape[0] > 1 else z.pow(2).mean().expand_as(mean)
        # a dimension nearly constant on this batch would be blown up into noise: floor its variance
        var = var.clamp_min(1e-2 * float(var.mean()) + 1e-12)
        self.target_mean.copy_(mean)
        self.target_std.copy_(var.sqrt())
        self.target_stats_ready.fill_(True)
        return {"target_std_mean": float(self.target_std.mean()), "target_mean_rms": float(mean.pow(2).mean().sqrt())}

    @torch.no_grad()
    def normalised_targets(self, obs: torch.Tensor, future_obs: torch.Tensor) -> torch.Tensor:
        """The stage-1 latent, z-scored: (B, Q, Dm)."""
        z = self.lam.targets(obs, future_obs).float()
        return (z - self.target_mean) / self.target_std

    def predict(self, obs: torch.Tensor, instructions: list[str]) -> torch.Tensor:
        """The policy view's prediction of the z-scored latent (B, Q, Dm)."""
        _, hidden = self.vlm.encode(obs, instructions)  # policy view: (B, K, H)
        return self.latent_head(hidden.flatten(1)).view(obs.shape[0], *self.target_shape)

    # --- forward ---
    def forward(self, batch: dict) -> dict:
        """batch: obs/future_obs uint8 (B,3,S,S), instruction list[str]. Returns loss + scalars."""
        if not bool(self.target_stats_ready):  # `care pretrain` calls prepare_training first
            self.set_target_stats(batch)
        target = self.normalised_targets(batch["obs"], batch["future_obs"])
        pred = self.predict(batch["obs"], batch["instruction"])
        loss = (pred.float() - target).pow(2).mean()
        return {"loss": loss, "loss_latent": loss.detach()}

    # --- the interface the pretraining loop calls ---
    def prepare_training(self, batch: dict) -> dict[str, float]:
        """Before the first step, on the same batch in every process: the targets' statistics."""
        return self.set_target_stats(batch)

    @torch.no_grad()
    def diagnostics(self, batches) -> dict[str, float]:
        """Held-out, in z-scored units:

            latent_mse       ||ẑ − z||² per number
            latent_mse_mean  the same when predicting the held-out mean latent (their variance)
            latent_r2        1 − latent_mse / latent_mse_mean: the share of the latent's variance
                             that o_t and the instruction explain (0: no better than the mean)
        """
        preds, targets = [], []
        for batch in batches:
            targets.append(self.normalised_targets(batch["obs"], batch["future_obs"]))
            preds.append(self.predict(batch["obs"], batch["instruction"]).float())
        if not targets:
            return {}
        t, p = torch.cat(targets), torch.cat(preds)  # (N, Q, Dm)
        mse = (p - t).pow(2).mean().item()
        mse_mean = (t - t.mean(dim=0)).pow(2).mean().item()
        return {"samples": float(t.shape[0]), "latent_mse": mse, "latent_mse_mean": mse_mean,
                "latent_r2": 1.0 - mse / max(mse_mean, 1e-12)}

    def brief(self, metrics: dict) -> dict:
        return {k: metrics[k] for k in ("latent_r2", "latent_mse") if k in metrics}

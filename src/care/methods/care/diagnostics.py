"""Held-out diagnostics: does the latent carry motion? (docs/DESIGN.md §3, "Diagnostics at every validation")

On held-out episodes, with the inverse-view latent z* unless said otherwise:

    point_epe               mean end-point error (px) of the point decoder, visible points
    point_epe_no_motion     the "points do not move" baseline (|displacement|)
    point_epe_ratio         point_epe / point_epe_no_motion  (acceptance: <= 0.7)
    point_epe_shuffled      with z shuffled across the batch: if it does not rise, the decoder
                            ignores z
    point_epe_policy        with the policy-view latent ẑ (o_t only): the inverse/policy gap
    point_epe_moving, point_no_motion_moving    the same on points that move > 1 px
    frame_mse               frame decoder error (layer-normalised target features)
    frame_mse_copy          the "next = current features" baseline
    frame_ratio             frame_mse / frame_mse_copy   (acceptance: < 1)
    frame_mse_shuffled, frame_mse_policy        as for points
    z_spread                std of z* across samples (mean over dims), z_rms its scale,
    z_spread_rel            their ratio (docs/DESIGN.md §3: a dead latent had 0.0025 / 1.46)
    view_mse, view_cos      ||ẑ − z*||² and cos(ẑ, z*): the gap between the two views
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import torch
import torch.nn.functional as F


def _point_errors(model, batch: dict, z: torch.Tensor) -> torch.Tensor:
    """(B, N) end-point error in pixels for the latent z."""
    out = model.point_decoder(batch["tracks"], z, batch.get("point_valid"))
    pred = model.point_decoder.displacement(out)  # (B, N, 2)
    disp = batch["future_tracks"] - batch["tracks"]
    return (pred - disp).norm(dim=-1)


@torch.no_grad()
def latent_diagnostics(model, batches: Iterable[dict]) -> dict[str, float]:
    """model: an unwrapped CareModel (put in eval mode by the caller)."""
    s: dict[str, float] = defaultdict(float)
    for batch in batches:
        v = model.views(batch)
        z, zh = v["z_star"].float(), v["z_hat"].float()
        B = z.shape[0]
        zs = z.roll(1, dims=0)  # every sample gets another sample's latent
        s["n"] += B
        if B > 1:
            s["z_spread"] += z.std(dim=0).mean().item() * B
            s["n_spread"] += B
        s["z_rms"] += z.pow(2).mean().sqrt().item() * B
        s["view_mse"] += (zh - z).pow(2).mean(dim=(1, 2)).sum().item()
        s["view_cos"] += F.cosine_similarity(zh.flatten(1), z.flatten(1), dim=1).sum().item()

        if "point" in model.tasks:
            valid = batch.get("point_valid")
            m = batch["visible"] if valid is None else batch["visible"] & valid
            disp = (batch["future_tracks"] - batch["tracks"]).norm(dim=-1)  # (B, N)
            moving = m & (disp > 1.0)
            errs = {"": _point_errors(model, batch, z), "_policy": _point_errors(model, batch, zh),
                    "_shuffled": _point_errors(model, batch, zs)}
            for k, e in errs.items():
                s[f"point_epe{k}"] += e[m].sum().item()
            s["point_epe_no_motion"] += disp[m].sum().item()
            s["point_epe_moving"] += errs[""][moving].sum().item()
            s["point_no_motion_moving"] += disp[moving].sum().item()
            s["n_points"] += m.sum().item()
            s["n_moving"] += moving.sum().item()

        if "frame" in model.tasks:
            for k, zz in {"": z, "_policy": zh, "_shuffled": zs}.items():
                pred = model.frame_decoder(v["feats"], zz.to(v["feats"].dtype), v["target_t"]).float()
                s[f"frame_mse{k}"] += (pred - v["target_f"]).pow(2).mean(dim=(1, 2)).sum().item()
            s["frame_mse_copy"] += (v["target_t"] - v["target_f"]).pow(2).mean(dim=(1, 2)).sum().item()

    n = max(s["n"], 1)
    out = {"samples": s["n"]}
    out["z_spread"] = s["z_spread"] / max(s["n_spread"], 1)
    out["z_rms"] = s["z_rms"] / n
    out["z_spread_rel"] = out["z_spread"] / max(out["z_rms"], 1e-12)
    out["view_mse"] = s["view_mse"] / n
    out["view_cos"] = s["view_cos"] / n
    if "point" in model.tasks:
        npts, nmov = max(s["n_points"], 1), max(s["n_moving"], 1)
        for k in ("point_epe", "point_epe_policy", "point_epe_shuffled", "point_epe_no_motion"):
            out[k] = s[k] / npts
        out["point_epe_ratio"] = out["point_epe"] / max(out["point_epe_no_motion"], 1e-12)
        out["point_epe_moving"] = s["point_epe_moving"] / nmov
        out["point_no_motion_moving"] = s["point_no_motion_moving"] / nmov
        out["moving_fraction"] = s["n_moving"] / npts
    if "frame" in model.tasks:
        for k in ("frame_mse", "frame_mse_policy", "frame_mse_shuffled", "frame_mse_copy"):
            out[k] = s[k] / n
        out["frame_ratio"] = out["frame_mse"] / max(out["frame_mse_copy"], 1e-12)
    return out

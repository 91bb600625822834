"""Every configuration of care, in one place.

Each command-line stage (`care collect`, `care pretrain`, ...) is driven by one top-level
dataclass below. Fields are overridden from the command line with dotted flags
(`--model.llm.hidden_size=256`, `--output-dir runs/x`) or from a YAML file (`--config`),
draccus-style, as in LeRobot. Every run writes its resolved config next to its outputs.

Precedence: dataclass defaults < named preset (`--preset`) < YAML file < command-line flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# ----------------------------------------------------------------------------------------
# Data: collection, import, inspection, clips
# ----------------------------------------------------------------------------------------


@dataclass
class CollectConfig:
    """`care collect`: roll out scripted experts in a simulator, record a LeRobot v3 dataset.

    Args:
        suite: simulator suite; "metaworld" is the embedded benchmark.
        tasks: a suite name ("MT10", "MT50") or a comma-separated list of env names
            ("drawer-close-v3,reach-v3").
        episodes_per_task: episodes recorded per task (each with its own seed).
        size: square image side in pixels.
        camera: simulator camera name; Meta-World's "corner" is rotated upright on capture.
        workers: processes collecting in parallel; episodes are split across them.
        seed: base seed; the dataset is a deterministic function of (config, seed).
        out: output dataset folder. Written to a temporary sibling and renamed at the end.
        max_steps: step limit per episode.
        post_success_steps: steps still recorded after the first success (so the end state
            is visible); the episode then ends.
        tracks: record ground-truth point tracks (points fixed on bodies, projected through
            the camera, visibility by depth test).
        points_per_body: points sampled on each tracked body's geoms.
        action_noise: std of Gaussian noise added to the expert's action (behaviour
            diversity); the executed, clipped action is what is recorded.
        detour_prob: per-step probability of starting a short random detour.
        detour_steps: length of a detour, in steps.
        pix_fmt: video pixel format. yuv444p keeps full colour resolution, so the stored
            frames match what the policy sees live (yuv420p, LeRobot's default, costs ~3-4
            grey levels at 64², more on small details like Meta-World's button).
        overwrite: replace an existing `out` folder.
    """

    suite: str = "metaworld"
    tasks: str = "MT10"
    episodes_per_task: int = 20
    size: int = 128
    camera: str = "corner"
    workers: int = 2
    seed: int = 0
    out: Path = Path("data/mt10")
    max_steps: int = 200
    post_success_steps: int = 10
    tracks: bool = True
    points_per_body: int = 8
    action_noise: float = 0.0
    detour_prob: float = 0.0
    detour_steps: int = 6
    pix_fmt: str = "yuv444p"
    overwrite: bool = False

    def __post_init__(self):
        if self.episodes_per_task < 1:
            raise ValueError(f"episodes_per_task must be >= 1, got {self.episodes_per_task}")
        if self.size < 16:
            raise ValueError(f"size must be >= 16 pixels, got {self.size}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if not 0.0 <= self.detour_prob <= 1.0:
            raise ValueError(f"detour_prob must be in [0, 1], got {self.detour_prob}")


@dataclass
class ImportVideosConfig:
    """`care import-videos`: turn a folder of videos + captions (Something-Something v2
    layout: `<id>.webm|.mp4` and a JSON list of {"id", "label"}) into a LeRobot v3
    dataset without actions or tracks.

    Args:
        videos: folder holding the videos.
        captions: JSON file, a list of {"id": ..., "label": ...}.
        out: output dataset folder (written to a temporary sibling, then renamed).
        size: resize frames to size x size (None keeps the original size; all videos must
            then share one size).
        fps: frame rate written to the dataset (None: the first video's rate).
        camera: camera key; features become `observation.images.<camera>`.
        overwrite: replace an existing `out` folder.
    """

    videos: Path = Path("videos")
    captions: Path = Path("labels.json")
    out: Path = Path("data/imported")
    size: int | None = 128
    fps: int | None = None
    camera: str = "main"
    overwrite: bool = False


@dataclass
class DatasetConfig:
    """`care dataset info|validate DIR`."""

    root: Path = Path("data/mt10")


@dataclass
class ClipConfig:
    """How training clips are cut from a dataset (shared by pretraining and fine-tuning).

    Args:
        camera: which `observation.images.<camera>` to read (None: the first one).
        image_size: frames are resized to this square size if they differ (None: as stored).
        cache_episodes: decoded episodes kept in memory per worker (LRU); decoding a video
            from its start for every sample is never done.
        val_episodes_per_task: episodes per task held out for validation (chosen by seed).
    """

    camera: str | None = None
    image_size: int | None = None
    cache_episodes: int = 256
    val_episodes_per_task: int = 2


# ----------------------------------------------------------------------------------------
# Tracking
# ----------------------------------------------------------------------------------------


@dataclass
class KLTConfig:
    """OpenCV pyramidal Lucas-Kanade parameters."""

    window: int = 11  # search window side, pixels; 11 beat 15 at 128² (benchmarks/tracking_accuracy.py)
    levels: int = 3  # pyramid levels above the base
    fb_threshold: float = 1.0  # forward-backward error (px) above which a point is invisible
    max_iters: int = 30
    eps: float = 0.01
    min_eig_threshold: float = 1e-4  # LK drops a point whose patch gradient is this flat (OpenCV's default)


@dataclass
class CoTrackerConfig:
    """CoTracker loaded from a local hub directory (never the network)."""

    repo_dir: Path | None = None  # local clone holding hubconf.py
    checkpoint: Path | None = None  # local weights file
    model_name: str = "cotracker3_offline"
    device: str = "cpu"


@dataclass
class TrackConfig:
    """`care track DIR`: fill the dataset's track store for every episode."""

    root: Path = Path("data/mt10")
    method: str = "klt"  # klt | cotracker
    grid: int = 16  # grid x grid query points on the first frame
    camera: str | None = None
    overwrite: bool = False
    klt: KLTConfig = field(default_factory=KLTConfig)
    cotracker: CoTrackerConfig = field(default_factory=CoTrackerConfig)

    def __post_init__(self):
        if self.method not in ("klt", "cotracker"):
            raise ValueError(f"method must be 'klt' or 'cotracker', got {self.method!r}")
        if self.grid < 1:
            raise ValueError(f"grid must be >= 1, got {self.grid}")


@dataclass
class VizTracksConfig:
    """`care viz tracks DIR --episode 0 --out tracks.mp4`."""

    root: Path = Path("data/mt10")
    episode: int = 0
    out: Path = Path("tracks.mp4")
    camera: str | None = None
    tail: int = 8  # frames of trail drawn behind each point
    scale: int = 4  # frames are upscaled this many times before drawing (128² is too small to see)
    strip_frames: int = 6  # frames, evenly spaced, in the PNG strip written next to the video
    fps: float | None = None  # video frame rate; None: the dataset's, at most 20 (Meta-World's 80 is a blur)

    def __post_init__(self):
        if self.scale < 1 or self.strip_frames < 1 or self.tail < 0:
            raise ValueError(
                f"scale and strip_frames must be >= 1 and tail >= 0, got {self.scale}, {self.strip_frames}, {self.tail}"
            )
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")


# ----------------------------------------------------------------------------------------
# Model (latent VLM + decoders). Defaults are the `tiny` preset.
# ----------------------------------------------------------------------------------------


@dataclass
class ViTConfig:
    """One vision tower (SigLIP-style or DINOv2-style, `transformers` classes).

    Args:
        hidden_size, num_layers, num_heads, intermediate_size: the tower's size when built
            from scratch (ignored when `path` is set: the checkpoint's own config wins).
        path: local `save_pretrained` dir of a real checkpoint (never a hub name).
    """

    hidden_size: int = 96
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 192
    path: str | None = None


@dataclass
class ModelConfig:
    """The latent VLM (DESIGN §2) and its two decoders (DESIGN §3).

    Sizes are all here; named presets (`micro`, `tiny`, `base`, `pretrained`) live in
    `care.models.presets`. The defaults below are `tiny` (4.3M trainable parameters at 128²).

    Input:
        image_size: square side the model sees; frames of another size are resized.
        patch_size: ViT patch side: (image_size / patch_size)² vision tokens per frame. A
            pretrained tower with another patch size sees the image resized so that its grid
            matches (e.g. /14 DINOv2 at 112² for a 8x8 grid).
        siglip, dino: the two towers; vision_feature_layer: which block's output is used
            (-1 last, -2 second-to-last as in Prismatic); later blocks are dropped.
        vision_token_merge: m; every m x m block of patch features is concatenated into one LLM
            token (space-to-depth, as InternVL's pixel shuffle): m² fewer tokens, no feature
            dropped. 1 is Prismatic's one token per patch. The frame decoder always sees all patches.
        future_tokens: what the inverse view reads for o_{t+n}: "frames" (its vision tokens) or
            "delta" (its tokens minus o_t's, as CoMo's [F_t, F_{t+n} − F_t]): the same information,
            but the change is explicit; with "frames" the latent of a from-scratch tiny model
            did not wake up (see care.models.latent_vlm).
        freeze_vision: do not train the towers (sensible with pretrained ones).
    LLM:
        llm_path: local dir of a pretrained Llama + its tokenizer; None builds one from the
            sizes below and trains a byte-level BPE (`vocab_size` tokens at most) on the
            dataset's instructions.
        max_text_tokens: instructions are padded/truncated to this many tokens.
        init_std: std of every Llama weight when built from scratch; None = 1/sqrt(hidden_size)
            (transformers' default 0.02 starved the latent, DESIGN §3).
    Latent action:
        num_latents (K) placeholders, each read out as a `latent_dim` vector: z is (K, latent_dim).
    Decoders:
        decoder_width/layers/heads: both decoders' transformer size.
        point_mode: classification (softmax over `point_bins` displacement bins per axis, in
            [-R, R] with R = point_max_disp * image_size) or regression (squared error).
        fourier_freqs: octaves of the Fourier embedding of point coordinates.
    Objective:
        objective: multitask (frame + point, uncertainty-weighted) | frame | point (Tab. 4).
        target_encoder: where frame-decoder targets come from: "ema" (an EMA copy of the towers,
            for from-scratch towers) or "frozen" (a frozen copy; with pretrained, frozen towers
            the towers themselves).
        ema_decay: EMA decay per optimiser step.
        latent_loss_weight: weight of ||ẑ − stopgrad(z*)||² (policy view -> inverse view). The views
            share the Llama, and the latent loss pulls the inverse view towards ignoring o_{t+n}
            (DESIGN §3). Measured on MT10 (tiny, 300 steps, held-out point EPE / "no motion"):
            weight 0 -> 0.57, 0.1 -> 0.61, 1.0 -> 0.69, while the policy view's EPE was the
            same at 0.1 and 1.0 (3.43 vs 3.37 px): hence 0.1.
        latent_loss_delay, latent_loss_ramp: the weight is 0 for `delay` optimiser steps, then
            rises linearly to `latent_loss_weight` over `ramp` steps, so the inverse view learns to
            read o_{t+n} before the policy view starts pulling on the shared weights (DESIGN §3).
    """

    # --- input ---
    image_size: int = 128
    patch_size: int = 16
    siglip: ViTConfig = field(default_factory=ViTConfig)
    dino: ViTConfig = field(default_factory=ViTConfig)
    vision_feature_layer: int = -1  # from-scratch towers: the last block; -2 (Prismatic) for pretrained
    vision_token_merge: int = 2  # m x m patches -> one LLM token: 16 tokens per frame at 128² (CPU budget)
    future_tokens: str = "delta"  # inverse view reads tokens(o_t+n) - tokens(o_t) (CoMo-style) | "frames"
    freeze_vision: bool = False
    # --- LLM (a transformers Llama) ---
    llm_path: str | None = None
    hidden_size: int = 192
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 512
    vocab_size: int = 512
    max_text_tokens: int = 16  # MT10 instructions are ~6-12 tokens with a BPE trained on them
    init_std: float | None = None
    # --- latent action ---
    num_latents: int = 4  # K placeholders
    latent_dim: int = 64
    # --- decoders ---
    decoder_width: int = 128
    decoder_layers: int = 2
    decoder_heads: int = 4
    point_mode: str = "classification"
    point_bins: int = 64
    point_max_disp: float = 0.125  # R / image side: ±16 px at 128², 0.5-px bins with 64 bins
    fourier_freqs: int = 6
    # --- objective ---
    objective: str = "multitask"
    target_encoder: str = "ema"
    ema_decay: float = 0.99
    latent_loss_weight: float = 0.1  # 1.0 cost the inverse view 0.61 -> 0.69 EPE ratio (DESIGN §3 trap)
    latent_loss_delay: int = 0
    latent_loss_ramp: int = 300

    def __post_init__(self):
        if self.objective not in ("multitask", "frame", "point"):
            raise ValueError(f"objective must be multitask|frame|point, got {self.objective!r}")
        if self.point_mode not in ("classification", "regression"):
            raise ValueError(f"point_mode must be classification|regression, got {self.point_mode!r}")
        if self.future_tokens not in ("frames", "delta"):
            raise ValueError(f"future_tokens must be frames|delta, got {self.future_tokens!r}")
        if self.target_encoder not in ("ema", "frozen"):
            raise ValueError(f"target_encoder must be ema|frozen, got {self.target_encoder!r}")
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})"
            )
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must divide by num_heads ({self.num_heads})")
        grid = self.image_size // self.patch_size
        if self.vision_token_merge < 1 or grid % self.vision_token_merge:
            raise ValueError(
                f"vision_token_merge ({self.vision_token_merge}) must be >= 1 and divide the patch grid "
                f"({self.image_size} / {self.patch_size} = {grid})"
            )
        if self.decoder_width % self.decoder_heads:
            raise ValueError(
                f"decoder_width ({self.decoder_width}) must divide by decoder_heads ({self.decoder_heads})"
            )
        if self.point_bins < 2:
            raise ValueError(f"point_bins must be >= 2, got {self.point_bins}")
        if not 0.0 < self.point_max_disp <= 1.0:
            raise ValueError(f"point_max_disp is a fraction of the image side in (0, 1], got {self.point_max_disp}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.num_latents < 1 or self.latent_dim < 1:
            raise ValueError(f"num_latents and latent_dim must be >= 1, got {self.num_latents}, {self.latent_dim}")


# ----------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------


@dataclass
class OptimConfig:
    """AdamW with linear warm-up then cosine decay (shared by pretraining and fine-tuning).

    Args:
        lr: peak learning rate; the schedule decays it to `min_lr_ratio * lr` at the last step.
        weight_decay: applied to matrices only (not to biases, norms or the UWL log-variances).
        log_var_lr: learning rate of the uncertainty weights s = log σ² (DESIGN §3: at the base
            rate they barely moved); same schedule shape.
        grad_clip: max global gradient norm (0 disables clipping).
    """

    lr: float = 3e-4
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    log_var_lr: float = 5e-3
    grad_clip: float = 1.0


@dataclass
class PretrainConfig:
    """`care pretrain`: CARE multi-task latent pretraining (no action labels are read).

    Args:
        dataset: a LeRobot v3 folder; the point objective needs its track store (`care track`).
        output_dir: receives config.yaml, checkpoints/, tensorboard/, val_metrics.json and the
            final model (save_pretrained: config.json, model.safetensors, tokenizer).
        preset: named model defaults (micro | tiny | base | pretrained), below YAML and flags.
        frame_interval: n in o_t -> o_{t+n}, in dataset frames; choose it (with the image
            size) so tracked points move several pixels (DESIGN §3).
        steps: optimiser steps; batch_size: samples per step *per process* (the global batch
            is batch_size x processes; the data order is a function of (seed, step, global
            batch), so 2 processes x b see the same samples as 1 process x 2b).
        mixed_precision: "no" | "bf16" (autocast; Accelerate).
        gradient_checkpointing: recompute the Llama's and towers' activations in backward.
        log_every, val_every, save_every: in optimiser steps (0 disables validation/saving).
        val_batches: held-out batches per validation (fixed, evenly spread over the held-out set).
        keep_checkpoints: the last k checkpoints are kept.
        resume: continue from the latest checkpoint in output_dir/checkpoints.
        time_limit_minutes: stop the loop after this much wall-clock time even if `steps` are not
            done (the last checkpoint, validation and the final model are still written); None: no
            limit. The LR schedule stays the one of `steps`.
    """

    dataset: Path = Path("data/mt10")
    output_dir: Path = Path("runs/care_tiny")
    preset: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    frame_interval: int = 8
    steps: int = 3000
    batch_size: int = 32
    num_workers: int = 1
    seed: int = 0
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    log_every: int = 20
    val_every: int = 250
    val_batches: int = 8
    save_every: int = 500
    keep_checkpoints: int = 3
    resume: bool = False
    time_limit_minutes: float | None = None

    def __post_init__(self):
        if self.frame_interval < 1:
            raise ValueError(f"frame_interval must be >= 1 (pretraining needs o_t and o_t+n), got {self.frame_interval}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be >= 1, got {self.steps}, {self.batch_size}")
        if self.mixed_precision not in ("no", "bf16"):
            raise ValueError(f"mixed_precision must be no|bf16, got {self.mixed_precision!r}")


@dataclass
class LoRAConfig:
    """LoRA (`peft`) on the LLM's linear layers during fine-tuning (paper §2.3).

    Args:
        enabled: False trains every LLM weight instead (used by the no-pretraining reference).
        rank, alpha: LoRA rank r and scale alpha (the update is scaled by alpha / r).
        dropout: dropout on the LoRA branch.
        target_modules: names of the Llama's linear layers that get adapters.
    The adapters are merged into the LLM's weights when the policy is saved, so a policy
    folder loads and runs without `peft`.
    """

    enabled: bool = True
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

    def __post_init__(self):
        if self.rank < 1:
            raise ValueError(f"lora.rank must be >= 1, got {self.rank}")
        if not self.target_modules:
            raise ValueError("lora.target_modules must name at least one module (or set lora.enabled=false)")


@dataclass
class FinetuneConfig:
    """`care finetune`: train the action head (and LoRA) on a few labelled episodes.

    Args:
        pretrained: a `care pretrain` output folder whose latent VLM is fine-tuned, or "none":
            the same architecture from scratch (`preset` / `model`), with its tokenizer trained
            on the labelled episodes' instructions — the no-pretraining reference.
        dataset: LeRobot v3 dataset with actions. Only the labelled episodes' actions are read.
        output_dir: the policy folder (`CarePolicy.from_pretrained(output_dir)`), plus
            `checkpoints/` (for --resume) and `logs/` (TensorBoard).
        preset, model: the architecture when `pretrained` is "none"; ignored otherwise (the
            pretrained folder's model config is used).
        clip: how frames are read; `clip.image_size` is forced to the model's image size.
        lora: adapters on the LLM (lora.enabled=false trains every LLM weight).
        freeze_vision: keep the vision towers and projector fixed (LoRA then only touches the
            LLM); False trains them fully.
        episodes_per_task: labelled episodes per task, chosen reproducibly by `seed`
            (`select_episodes_per_task`) among the successful ones when the dataset records
            success; None uses every (successful) episode: the label-supervised reference.
        chunk_size: H actions predicted at once; 1 reproduces the paper. `care eval` executes the
            chunk open loop or with temporal ensembling (EvalConfig.execution).
        head_layers, head_width, head_dropout: the residual MLP action head.
        action_quantiles: per-dimension percentiles mapped to -1 and 1 (OpenVLA's q01/q99).
        steps, batch_size, num_workers, seed, mixed_precision: training loop.
        log_every, save_every, keep_checkpoints, resume: as in `care pretrain`.
    """

    pretrained: str = "runs/care_tiny"
    dataset: Path = Path("data/mt10")
    output_dir: Path = Path("runs/care_tiny_ft")
    preset: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    freeze_vision: bool = False
    # --- data ---
    episodes_per_task: int | None = 5
    # --- action head ---
    chunk_size: int = 1
    head_layers: int = 2  # residual MLP blocks
    head_width: int = 256
    head_dropout: float = 0.0
    action_quantiles: tuple[float, float] = (0.01, 0.99)
    # --- training loop ---
    steps: int = 2000
    batch_size: int = 32
    num_workers: int = 1
    seed: int = 0
    mixed_precision: str = "no"
    log_every: int = 20
    save_every: int = 500
    keep_checkpoints: int = 3
    resume: bool = False

    def __post_init__(self):
        if self.episodes_per_task is not None and self.episodes_per_task < 1:
            raise ValueError(f"episodes_per_task must be >= 1 or None (all), got {self.episodes_per_task}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be >= 1, got {self.steps}, {self.batch_size}")
        lo, hi = self.action_quantiles
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"action_quantiles must satisfy 0 <= low < high <= 1, got {self.action_quantiles}")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be no|bf16|fp16, got {self.mixed_precision!r}")


# ----------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------


@dataclass
class EvalConfig:
    """`care eval`: roll a policy out on held-out seeds, report success per task.

    Args:
        policy: a `care finetune` output folder.
        suite, tasks: simulator suite and a task suite name ("MT10") or comma-separated env names.
        episodes_per_task: rollouts per task; episode i of a task uses env seed `seed + i`
            (keep `seed` away from the collection seeds; a clash with the policy's training
            seeds is an error). Use >= 20: with 10, +-15% is noise (DESIGN §3).
        max_steps: step limit; an episode ends at the first success or here.
        workers: parallel rollout processes (spawned); 1 runs in this process.
        videos_per_task: the first episodes of each task saved as mp4 (0: none).
        execution: "chunk" (run the predicted chunk open loop, then re-plan) or "ensemble"
            (re-plan every step and blend overlapping chunks, ACT's temporal ensembling).
        n_action_steps: ("chunk") actions executed per chunk before re-planning; None: all H.
        ensemble_decay: k in the exp(-k*i) weights of "ensemble" (i = 0 is the oldest).
        size, camera: rendering; None uses what the policy's training data was recorded with
            (the policy then resizes exactly as the training clips were).
        device: torch device of the policy in each worker.
        video_fps: frame rate of the rollout videos.
        output_dir: where eval_info.json, eval.md, success.png, videos/ and config.yaml go.
    """

    policy: Path = Path("runs/care_tiny_ft")
    suite: str = "metaworld"
    tasks: str = "MT10"
    episodes_per_task: int = 10
    seed: int = 1000  # disjoint from collection seeds
    max_steps: int = 200
    workers: int = 2
    videos_per_task: int = 2
    execution: str = "chunk"  # chunk (open loop) | ensemble (temporal ensembling)
    n_action_steps: int | None = None
    ensemble_decay: float = 0.1  # exp(-k*i) weights, ACT-style
    size: int | None = None
    camera: str | None = None
    device: str = "cpu"
    video_fps: int = 30
    output_dir: Path = Path("runs/eval")

    def __post_init__(self):
        if self.execution not in ("chunk", "ensemble"):
            raise ValueError(f"execution must be chunk|ensemble, got {self.execution!r}")
        if self.episodes_per_task < 1 or self.max_steps < 1 or self.workers < 1:
            raise ValueError(
                "episodes_per_task, max_steps and workers must be >= 1, got "
                f"{self.episodes_per_task}, {self.max_steps}, {self.workers}"
            )
        if self.videos_per_task < 0:
            raise ValueError(f"videos_per_task must be >= 0, got {self.videos_per_task}")
        if self.ensemble_decay < 0:
            raise ValueError(f"ensemble_decay must be >= 0, got {self.ensemble_decay}")


@dataclass
class CompareConfig:
    """`care eval compare`: success per task, mean +- std over training seeds, per method.

    Args:
        methods: label -> glob of `care eval` output folders, one folder per training seed
            (e.g. {"CARE": "runs/cmp/care_s*_eval"}). Every folder of every method must have
            evaluated the same tasks on the same episode seeds, or the comparison is refused.
        reference: a method label to compare every other method with, paired by seed and by
            episode (difference per seed, episodes won/lost, sign-test p); None: no pairing.
        output_dir: where compare.md, compare.json and compare.png go.
        title: heading of the Markdown table and the plot.
    """

    methods: dict[str, str] = field(default_factory=dict)
    reference: str | None = None
    output_dir: Path = Path("runs/compare")
    title: str = "Success rate (%), mean ± std over training seeds"

    def __post_init__(self):
        if not self.methods:
            raise ValueError('methods is empty: give --methods \'{"label": "runs/x_s*_eval", ...}\'')

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

    window: int = 15  # search window side, pixels
    levels: int = 3  # pyramid levels above the base
    fb_threshold: float = 1.0  # forward-backward error (px) above which a point is invisible
    max_iters: int = 30
    eps: float = 0.01


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


# ----------------------------------------------------------------------------------------
# Model (latent VLM + decoders). Defaults are the `tiny` preset.
# ----------------------------------------------------------------------------------------


@dataclass
class ViTConfig:
    """One vision tower (SigLIP-style or DINOv2-style, `transformers` classes)."""

    hidden_size: int = 96
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 192
    path: str | None = None  # local `save_pretrained` dir of a real checkpoint


@dataclass
class ModelConfig:
    """The latent VLM (DESIGN §2) and its two decoders (DESIGN §3).

    Sizes are all here; named presets (`micro`, `tiny`, `base`, `pretrained`) live in
    `care.models.presets`. The defaults below are `tiny`.
    """

    # --- input ---
    image_size: int = 128
    patch_size: int = 16
    siglip: ViTConfig = field(default_factory=ViTConfig)
    dino: ViTConfig = field(default_factory=ViTConfig)
    vision_feature_layer: int = -2  # Prismatic takes the second-to-last layer
    freeze_vision: bool = False
    # --- LLM (a transformers Llama) ---
    llm_path: str | None = None  # local dir of a pretrained Llama + its tokenizer
    hidden_size: int = 192
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 512
    vocab_size: int = 512  # byte-level BPE trained on the instructions (no pretrained LLM)
    max_text_tokens: int = 24
    init_std: float | None = None  # None: 1/sqrt(hidden_size); HF's 0.02 starves the latent (DESIGN §3)
    # --- latent action ---
    num_latents: int = 4  # K placeholders
    latent_dim: int = 64
    # --- decoders ---
    decoder_width: int = 128
    decoder_layers: int = 2
    decoder_heads: int = 4
    point_mode: str = "classification"  # classification (softmax over bins) | regression
    point_bins: int = 64
    fourier_freqs: int = 8
    # --- objective ---
    objective: str = "multitask"  # multitask | frame | point (paper Tab. 4)
    target_encoder: str = "ema"  # ema | frozen: frame-decoder targets must not collapse
    ema_decay: float = 0.99
    latent_loss_weight: float = 1.0

    def __post_init__(self):
        if self.objective not in ("multitask", "frame", "point"):
            raise ValueError(f"objective must be multitask|frame|point, got {self.objective!r}")
        if self.point_mode not in ("classification", "regression"):
            raise ValueError(f"point_mode must be classification|regression, got {self.point_mode!r}")
        if self.target_encoder not in ("ema", "frozen"):
            raise ValueError(f"target_encoder must be ema|frozen, got {self.target_encoder!r}")
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})"
            )
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must divide by num_heads ({self.num_heads})")


# ----------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------


@dataclass
class OptimConfig:
    lr: float = 3e-4
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 100
    grad_clip: float = 1.0


@dataclass
class PretrainConfig:
    """`care pretrain`: CARE multi-task latent pretraining (no action labels are read)."""

    dataset: Path = Path("data/mt10")
    output_dir: Path = Path("runs/care_tiny")
    preset: str | None = None  # micro | tiny | base | pretrained (applied before YAML/flags)
    model: ModelConfig = field(default_factory=ModelConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    frame_interval: int = 8  # n: o_t -> o_{t+n}; chosen from measured track displacement
    steps: int = 3000
    batch_size: int = 32
    num_workers: int = 1
    seed: int = 0
    mixed_precision: str = "no"  # no | bf16
    gradient_checkpointing: bool = False
    log_every: int = 20
    val_every: int = 250
    save_every: int = 500
    keep_checkpoints: int = 3
    resume: bool = False


@dataclass
class LoRAConfig:
    enabled: bool = True  # False: train every LLM weight
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class FinetuneConfig:
    """`care finetune`: train the action head (and LoRA) on a few labelled episodes."""

    pretrained: str = "runs/care_tiny"  # a pretrain output dir, or "none" (same arch, from scratch)
    dataset: Path = Path("data/mt10")
    output_dir: Path = Path("runs/care_tiny_ft")
    preset: str | None = None  # used with --pretrained none
    model: ModelConfig = field(default_factory=ModelConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    episodes_per_task: int | None = 5  # labelled episodes per task; None: all (label-supervised)
    chunk_size: int = 1  # H actions predicted at once (1 reproduces the paper)
    head_layers: int = 2  # residual MLP blocks
    head_width: int = 256
    steps: int = 2000
    batch_size: int = 32
    num_workers: int = 1
    seed: int = 0
    mixed_precision: str = "no"
    log_every: int = 20
    save_every: int = 500
    keep_checkpoints: int = 3
    resume: bool = False


# ----------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------


@dataclass
class EvalConfig:
    """`care eval`: roll a policy out on held-out seeds, report success per task."""

    policy: Path = Path("runs/care_tiny_ft")
    suite: str = "metaworld"
    tasks: str = "MT10"
    episodes_per_task: int = 10
    seed: int = 1000  # disjoint from collection seeds
    max_steps: int = 200
    workers: int = 2
    videos_per_task: int = 2
    execution: str = "chunk"  # chunk (open loop) | ensemble (temporal ensembling)
    ensemble_decay: float = 0.1  # exp(-k*i) weights, ACT-style
    output_dir: Path = Path("runs/eval")

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
from typing import Any, Literal

import draccus

from care.envs.configs import EnvConfig, MetaWorldEnvConfig
from care.methods.base import MethodConfig
from care.methods.care.configuration_care import CareConfig  # noqa: F401  (registers "care")
from care.methods.lapa.configuration_lapa import LapaConfig  # noqa: F401
from care.methods.como.configuration_como import ComoConfig  # noqa: F401

# ----------------------------------------------------------------------------------------
# Data: collection, import, inspection, clips
# ----------------------------------------------------------------------------------------


@dataclass
class CollectConfig:
    """`care collect`: roll out scripted experts in a simulator, record a LeRobot v3 dataset.

    Args:
        env: the simulator and its tasks, image size, camera and step limit
            (`--env.type=metaworld --env.tasks=MT10 --env.size=128 --env.camera=corner
            --env.max-steps=200`; see care.envs.configs). A size or camera left None is set
            to the simulator's default (Meta-World: 128, "corner", rotated upright on capture)
            when the config is built, so the saved config names what was rendered.
        episodes_per_task: episodes recorded per task (each with its own seed).
        workers: processes collecting in parallel; episodes are split across them.
        seed: base seed; the dataset is a deterministic function of (config, seed).
        output_dir: output dataset folder. Written to a temporary sibling and renamed at the end.
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
        overwrite: replace an existing `output_dir` folder.
    """

    env: EnvConfig = field(default_factory=MetaWorldEnvConfig)
    episodes_per_task: int = 20
    workers: int = 2
    seed: int = 0
    output_dir: Path = Path("data/mt10")
    post_success_steps: int = 10
    tracks: bool = True
    points_per_body: int = 8
    action_noise: float = 0.0
    detour_prob: float = 0.0
    detour_steps: int = 6
    pix_fmt: Literal["yuv444p", "yuv420p"] = "yuv444p"
    overwrite: bool = False

    def __post_init__(self):
        if self.episodes_per_task < 1:
            raise ValueError(f"episodes_per_task must be >= 1, got {self.episodes_per_task}")
        self.env = self.env.with_rendering()  # the simulator's size/camera for those left None
        if getattr(self.env, "init_states", None) == "fixed":
            raise ValueError("care collect records random placements: LIBERO's fixed initial states are the "
                             "evaluation episodes of the published protocol (leave --env.init-states unset)")
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
        output_dir: output dataset folder (written to a temporary sibling, then renamed).
        size: None keeps every frame's original size and aspect (all videos must then share
            one size); S resizes every frame to S x S (`--size 128`).
        fps: frame rate written to the dataset (None: the first video's rate).
        camera: camera key; features become `observation.images.<camera>`.
        overwrite: replace an existing `output_dir` folder.
    """

    videos: Path = Path("videos")
    captions: Path = Path("labels.json")
    output_dir: Path = Path("data/imported")
    size: int | None = None
    fps: int | None = None
    camera: str = "main"
    overwrite: bool = False


@dataclass
class DatasetConfig:
    """`care dataset info|validate --dataset DIR` (or the folder as the one positional argument)."""

    dataset: Path = Path("data/mt10")


@dataclass
class ClipConfig:
    """How training clips are cut from a dataset (shared by pretraining and fine-tuning).

    Args:
        camera: which `observation.images.<camera>` to read (None: the first one).
        wrist_camera: a second camera served beside it as `wrist_obs` (fine-tuning: the policy
            then also sees that view, e.g. LIBERO's "wrist_image"; None: one camera).
        image_size: frames are resized to this square size if they differ (None: as stored).
        cache_episodes: decoded episodes kept in memory per worker (LRU); decoding a video
            from its start for every sample is never done.
        decode: "episode": decode a whole episode on a cache miss and serve its clips from
            memory (fast while the served episodes fit the cache); "frames": decode only the
            frames an item needs, seeking to the keyframe before them (LeRobot's way: no frame
            memory, about gop + n frames decoded per item); "auto": "episode" when the served
            episodes fit in cache_episodes, else "frames" (an LRU smaller than the data it
            cycles through misses on almost every item).
        val_episodes_per_task: episodes per task held out for validation (chosen by seed).
    """

    camera: str | None = None
    wrist_camera: str | None = None
    image_size: int | None = None
    cache_episodes: int = 256
    decode: str = "auto"
    val_episodes_per_task: int = 2

    def __post_init__(self):
        if self.decode not in ("auto", "episode", "frames"):
            raise ValueError(f"clip.decode must be auto, episode or frames, got {self.decode!r}")
        if self.cache_episodes < 1:
            raise ValueError(f"clip.cache_episodes must be >= 1, got {self.cache_episodes}")


# ----------------------------------------------------------------------------------------
# Tracking
# ----------------------------------------------------------------------------------------


@dataclass
class TrackerConfig(draccus.ChoiceRegistry):
    """A point tracker, chosen by name: `care track --tracker.type=klt|cotracker`."""

    @property
    def type(self) -> str:
        return self.get_choice_name(self.__class__)

    @classmethod
    def default_choice_name(cls) -> str:
        return "klt"


@TrackerConfig.register_subclass("klt")
@dataclass
class KLTConfig(TrackerConfig):
    """OpenCV pyramidal Lucas-Kanade parameters."""

    window: int = 11  # search window side, pixels; 11 beat 15 at 128² (benchmarks/tracking_accuracy.py)
    levels: int = 3  # pyramid levels above the base
    fb_threshold: float = 1.0  # forward-backward error (px) above which a point is invisible
    max_iters: int = 30
    eps: float = 0.01
    min_eig_threshold: float = 1e-4  # LK drops a point whose patch gradient is this flat (OpenCV's default)


@TrackerConfig.register_subclass("cotracker")
@dataclass
class CoTrackerConfig(TrackerConfig):
    """CoTracker loaded from a local hub directory (never the network)."""

    repo_dir: Path | None = None  # local clone holding hubconf.py
    checkpoint: Path | None = None  # local weights file
    model_name: str = "cotracker3_offline"
    device: str = "cpu"


@dataclass
class TrackConfig:
    """`care track --dataset DIR`: fill the dataset's track store for every episode.

    `--tracker.type` picks the tracker (klt | cotracker); its own fields follow, e.g.
    `--tracker.window 15` (KLT) or `--tracker.repo-dir DIR --tracker.checkpoint FILE` (CoTracker).
    """

    dataset: Path = Path("data/mt10")
    tracker: TrackerConfig = field(default_factory=KLTConfig)
    grid: int = 16  # grid x grid query points on the first frame
    camera: str | None = None
    overwrite: bool = False

    def __post_init__(self):
        if self.grid < 1:
            raise ValueError(f"grid must be >= 1, got {self.grid}")


@dataclass
class VizTracksConfig:
    """`care viz tracks --dataset DIR --episode 0 --output-dir viz`: writes
    `<output_dir>/tracks_episode_<i>.mp4` and a PNG strip beside it."""

    dataset: Path = Path("data/mt10")
    episode: int = 0
    output_dir: Path = Path("outputs/viz")
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
    """The latent VLM (docs/DESIGN.md §2, paper §2.1), shared by every pretraining method.

    What a method adds on top (CARE's decoders, a LAPA-style quantiser, ...) is its own config,
    `--method.*` (care.methods). Sizes are all here; named presets (`micro`, `tiny`, `base`,
    `pretrained`) live in `care.presets`. The defaults below are `tiny`.

    Input:
        image_size: square side the model sees; frames of another size are resized.
        patch_size: ViT patch side: (image_size / patch_size)² vision tokens per frame. A
            pretrained tower with another patch size sees the image resized so that its grid
            matches (e.g. /14 DINOv2 at 112² for a 8x8 grid).
        vision_towers: which towers, by name from `care.models.vision.VISION_TOWERS`; their
            patch features are concatenated channel-wise (Prismatic's DinoSigLIP is both).
            One name makes a single-tower model.
        siglip, dino: each tower's size or local checkpoint (read only if the tower is used).
        vision_feature_layer: which block's output is used (-1 last, -2 second-to-last as in
            Prismatic); later blocks are dropped.
        vision_token_merge: m; every m x m block of patch features is concatenated into one LLM
            token (space-to-depth, as InternVL's pixel shuffle): m² fewer tokens, no feature
            dropped. 1 is Prismatic's one token per patch. The frame decoder always sees all patches.
        future_tokens: what the inverse view reads for o_{t+n}: "frames" (its vision tokens) or
            "delta" (its tokens minus o_t's, as CoMo's [F_t, F_{t+n} − F_t]): the same information,
            but the change is explicit; with "frames" the latent of a from-scratch tiny model
            did not wake up (see care.models.latent_vlm).
        freeze_vision: do not train the towers (and, when fine-tuning, the projector): sensible
            with pretrained towers. The one place this choice lives.
    LLM:
        llm_path: local dir of a pretrained causal LM + its tokenizer (any `transformers`
            AutoModel architecture: Llama, Qwen2, Mistral, ...); None builds a Llama from the
            sizes below and trains a byte-level BPE (`vocab_size` tokens at most) on the
            dataset's instructions.
        max_text_tokens: instructions are padded/truncated to this many tokens.
        init_std: std of every Llama weight when built from scratch; None = 1/sqrt(hidden_size)
            (transformers' default 0.02 starved the latent, docs/DESIGN.md §3).
    Latent action:
        num_latents (K) placeholders, each read out as a `latent_dim` vector: z is (K, latent_dim).
    """

    # --- input ---
    image_size: int = 128
    patch_size: int = 16
    vision_towers: tuple[Literal["siglip", "dinov2"], ...] = ("siglip", "dinov2")
    siglip: ViTConfig = field(default_factory=ViTConfig)
    dino: ViTConfig = field(default_factory=ViTConfig)
    vision_feature_layer: int = -1  # from-scratch towers: the last block; -2 (Prismatic) for pretrained
    vision_token_merge: int = 2  # m x m patches -> one LLM token: 16 tokens per frame at 128² (CPU budget)
    future_tokens: Literal["frames", "delta"] = "delta"  # inverse view reads tokens(o_t+n) - tokens(o_t)
    freeze_vision: bool = False
    # --- LLM (a transformers Llama when built from scratch) ---
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

    def __post_init__(self):
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
        self.vision_towers = tuple(self.vision_towers)
        if not self.vision_towers or len(set(self.vision_towers)) != len(self.vision_towers):
            raise ValueError(f"vision_towers must name one or more distinct towers, got {list(self.vision_towers)}")
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
        weight_decay: applied to matrices only (not to biases or norms; a method's own parameter
            groups may have none, e.g. CARE's uncertainty weights, `--method.log-var-lr`).
        grad_clip: max global gradient norm (0 disables clipping).
    """

    lr: float = 3e-4
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0


@dataclass
class ParallelConfig:
    """How a launch of several processes trains one model (`--parallel.*`; care.training.parallel).

    Args:
        strategy: "ddp": every process holds the whole model, its gradients and AdamW state, and
            gradients are averaged (Accelerate's DistributedDataParallel; ~16 bytes per trained
            parameter on every GPU). "fsdp2": PyTorch's `fully_shard` per transformer block (LLM,
            vision towers, method decoders) and then the root, so each of N processes keeps 1/N
            of the parameters, gradients and AdamW state and gathers a block's weights only while
            it runs (torchtitan's recipe). One process behaves the same under both.
        activation_checkpointing: recompute every transformer block's activations in backward
            (torch's checkpoint wrapper around each block; either strategy): the activations kept
            per block drop to its input, for ~1/3 more compute.
        reshard_after_forward: fsdp2 only: free a block's gathered weights after its forward and
            gather them again in backward (ZeRO-3, the least memory); False keeps them gathered
            until backward (ZeRO-2-like: one all-gather fewer per block, more memory).
    With fsdp2 the parameters live in the run's precision: `mixed_precision=bf16` computes with
    bf16 copies of the gathered weights and reduces gradients in fp32 (MixedPrecisionPolicy); the
    sharded master weights and AdamW state stay fp32.
    """

    strategy: Literal["ddp", "fsdp2"] = "ddp"
    activation_checkpointing: bool = False
    reshard_after_forward: bool = True


@dataclass
class TrainConfig:
    """The training fields every training command shares (`care pretrain`, `care lam`, `care
    finetune`; the loop is care.training.loop).

    Args:
        dataset: a LeRobot v3 folder.
        output_dir: the run's folder: run_config.yaml (this config), checkpoints/, tensorboard/,
            train_log.jsonl and what the command saves (a pretrained, stage-1 or policy folder).
        preset: named model sizes (micro | tiny | base | pretrained | prismatic-7b,
            care.presets) for `model` and the method's own sizes; on the command line below YAML
            and flags. From Python, `care.presets.apply_preset(cfg)` gives a `model` / `method`
            left at its defaults the preset's.
        model: the latent VLM (ModelConfig).
        clip: how clips are cut from the dataset.
        optim: AdamW and its schedule.
        steps: optimiser steps; batch_size: samples per step *per process* (the global batch
            is batch_size x processes; the data order is a function of (seed, step, global
            batch), so 2 processes x b see the same samples as 1 process x 2b).
        num_workers: data loader processes; seed: model init and data order.
        mixed_precision: "auto" (bf16 autocast where the hardware runs bf16 natively, else
            fp32; care.models.precision) | "fp32" | "bf16". "no" is read as "fp32" (older configs).
        log_every, val_every, save_every: in optimiser steps (0 disables validation/saving).
        keep_checkpoints: the last k checkpoints are kept.
        resume: continue from the latest checkpoint in output_dir/checkpoints.
        time_limit_minutes: stop the loop after this much wall-clock time even if `steps` are not
            done (the last checkpoint, validation and the final folder are still written); None: no
            limit. The LR schedule stays the one of `steps`.
        parallel: how several processes share the model: ddp (a full copy each) or fsdp2
            (sharded); see ParallelConfig and the README's "Scaling to GPUs".
    """

    dataset: Path = Path("data/mt10")
    output_dir: Path = Path("runs/care_tiny")
    preset: Literal["micro", "tiny", "base", "pretrained", "prismatic-7b"] | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    steps: int = 3000
    batch_size: int = 32
    num_workers: int = 1
    seed: int = 0
    mixed_precision: Literal["auto", "fp32", "bf16", "no"] = "auto"
    log_every: int = 20
    val_every: int = 250
    save_every: int = 500
    keep_checkpoints: int = 3
    resume: bool = False
    time_limit_minutes: float | None = None
    parallel: ParallelConfig = field(default_factory=ParallelConfig)  # ddp | fsdp2 (care.training.parallel)

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be >= 1, got {self.steps}, {self.batch_size}")


@dataclass
class PretrainConfig(TrainConfig):
    """`care pretrain` (and `care lam`): latent pretraining of the VLM by a method (no action
    labels are read). The training fields are TrainConfig's.

    Args:
        dataset: CARE's point objective needs its track store (`care track`).
        extra_datasets: more LeRobot v3 folders whose videos join `dataset`'s (pretraining on
            several sources, the paper's data rows): each is split into training and held-out
            episodes by task like `dataset`, and clips are drawn uniformly over all of them.
            `--extra-datasets "[data/mt40,data/mt10_corner2]"`.
        output_dir: receives the final model (save_pretrained: config.json = the VLM's
            ModelConfig, method.json = the method's config, model.safetensors, tokenizer),
            val_metrics.json and episodes.json besides TrainConfig's.
        method: the pretraining method, by name (`--method.type=care`, the default), with its
            own fields (`--method.objective=point`); see care.methods.
        frame_interval: n in o_t -> o_{t+n}, in dataset frames; choose it (with the image
            size) so tracked points move several pixels (docs/DESIGN.md §3).
        gradient_checkpointing: recompute activations in backward (the method's
            `enable_gradient_checkpointing`: the Llama's and towers' by default).
        val_batches: held-out batches per validation (fixed, evenly spread over the held-out set).
    """

    extra_datasets: list[Path] = field(default_factory=list)
    method: MethodConfig = field(default_factory=CareConfig)
    frame_interval: int = 8
    gradient_checkpointing: bool = False
    val_batches: int = 8

    def __post_init__(self):
        super().__post_init__()
        if self.frame_interval < 1:
            raise ValueError(f"frame_interval must be >= 1 (pretraining needs o_t and o_t+n), got {self.frame_interval}")


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
class ActionHeadConfig:
    """The action head (`--head.*`; docs/DESIGN.md §4).

    Args:
        type: "mlp", the paper's residual MLP on the K latent placeholders' hidden states
            (OpenVLA-OFT's L1 head); or "univla", UniVLA's action decoder (beyond the paper): a
            learned query attention-pools the vision tokens' hidden states, and that summary,
            as the query, attention-pools the K latent placeholders' states, before the same
            residual MLP read-out. It reads the latent action and the scene, not the
            placeholders alone.
        chunk_size: H actions predicted at once; 1 reproduces the paper. `care eval` executes
            the chunk open loop or with temporal ensembling (EvalConfig.execution); the clip
            dataset serves H future actions per sample.
        width: hidden width of the residual MLP (and of the attention pools).
        num_blocks: residual blocks.
        dropout: dropout inside each block (0: none).
        attention_heads: heads of each attention pool ("univla"; width must divide by it).
    """

    type: Literal["mlp", "univla"] = "mlp"
    chunk_size: int = 1
    width: int = 256
    num_blocks: int = 2
    dropout: float = 0.0
    attention_heads: int = 4

    def __post_init__(self):
        if self.chunk_size < 1 or self.width < 1:
            raise ValueError(f"head.chunk_size and head.width must be >= 1, got {self.chunk_size}, {self.width}")
        if self.num_blocks < 0:
            raise ValueError(f"head.num_blocks must be >= 0, got {self.num_blocks}")
        if self.type not in ("mlp", "univla"):
            raise ValueError(f"head.type must be mlp or univla, got {self.type!r}")
        if self.attention_heads < 1 or self.width % self.attention_heads:
            raise ValueError(f"head.width ({self.width}) must be a multiple of head.attention_heads "
                             f"({self.attention_heads})")


@dataclass
class StateInputConfig:
    """Proprioceptive state as a policy input (`--state.enabled`; beyond the paper).

    The dataset's `observation.state` (at the frame the action is taken) is normalised to
    [-1, 1] with the labelled episodes' q01/q99 and projected into one LLM token
    (OpenVLA-OFT's proprio projector); `care eval` feeds the simulator's state the same way.

    Args:
        enabled: read the state.
        names: which state dimensions, by the names in meta/info.json (`features.observation.state.names`);
            None: every dimension. Meta-World's 39-d state also holds object and goal
            positions; its proprioceptive part is `[hand_x,hand_y,hand_z,gripper_opening]`.
    """

    enabled: bool = False
    names: tuple[str, ...] | None = None


@dataclass
class AugmentConfig:
    """Image augmentation of the fine-tuning batches (`--augment.shift 4`; beyond the paper).

    Args:
        shift: DrQ's random shift: every training image (and wrist image) is translated by up
            to this many pixels each way, edges repeated (care.data.augment); 0: none.
            Held-out validation and evaluation see the images as they are.
    """

    shift: int = 0

    def __post_init__(self):
        if self.shift < 0:
            raise ValueError(f"augment.shift must be >= 0 pixels, got {self.shift}")


@dataclass
class FinetuneConfig(TrainConfig):
    """`care finetune`: train the action head (and LoRA) on a few labelled episodes. The
    training fields are TrainConfig's.

    Args:
        pretrained: a `care pretrain` output folder (of any method) whose latent VLM is
            fine-tuned; None: the same architecture from scratch (`preset` / `model`), with its
            tokenizer trained on the labelled episodes' instructions — the no-pretraining reference.
        dataset: LeRobot v3 dataset with actions. Only the labelled episodes' actions are read
            (and the validation episodes', for the held-out action error).
        output_dir: the policy folder (`CarePolicy.from_pretrained(output_dir)`), plus
            TrainConfig's run files.
        preset, model: the architecture when `pretrained` is None; ignored otherwise (the
            pretrained folder's model config is used, `freeze_vision` included).
        clip: how frames are read; `clip.image_size` is forced to the model's image size.
        lora: adapters on the LLM (lora.enabled=false trains every LLM weight).
        head: the action head (chunk size, width, blocks, dropout).
        state: proprioceptive state as an input (off by default).
        augment: image augmentation of the training batches (off by default).
        episodes_per_task: labelled episodes per task, chosen reproducibly by `seed`
            (`select_episodes_per_task`) among the successful ones when the dataset records
            success; None uses every (successful) episode but the validation ones: the
            label-supervised reference.
        val_episodes_per_task: labelled episodes per task never trained on, for the held-out
            action error (L1 in the normalised range) logged every `val_every` steps; chosen
            by `seed` after the training episodes (0: no validation).
        action_quantiles: per-dimension percentiles mapped to -1 and 1 (OpenVLA's q01/q99).
    """

    pretrained: Path | None = Path("runs/care_tiny")
    output_dir: Path = Path("runs/care_tiny_ft")
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    head: ActionHeadConfig = field(default_factory=ActionHeadConfig)
    state: StateInputConfig = field(default_factory=StateInputConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # --- data ---
    episodes_per_task: int | None = 5
    val_episodes_per_task: int = 2
    action_quantiles: tuple[float, float] = (0.01, 0.99)
    # --- training loop (TrainConfig's, with fine-tuning's defaults) ---
    steps: int = 2000

    def __post_init__(self):
        super().__post_init__()
        if self.episodes_per_task is not None and self.episodes_per_task < 1:
            raise ValueError(f"episodes_per_task must be >= 1 or None (all), got {self.episodes_per_task}")
        if self.val_episodes_per_task < 0:
            raise ValueError(f"val_episodes_per_task must be >= 0, got {self.val_episodes_per_task}")
        lo, hi = self.action_quantiles
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"action_quantiles must satisfy 0 <= low < high <= 1, got {self.action_quantiles}")


# ----------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------


@dataclass
class EvalConfig:
    """`care eval`: roll a policy out on held-out seeds, report success per task.

    Args:
        policy: a `care finetune` output folder.
        env: the simulator, its tasks (`--env.tasks=MT10` or comma-separated env names), image
            size, camera and step limit (an episode ends at the first success or at
            `env.max_steps`). `env.size` / `env.camera` left None (the default) render what
            the policy's training data was recorded with (the policy then resizes exactly as
            the training clips were); set them to override.
        episodes_per_task: rollouts per task; episode i of a task uses env seed `seed + i`
            (keep `seed` away from the collection seeds; a clash with the policy's training
            seeds is an error). Use >= 20: with 10, +-15% is noise (docs/DESIGN.md §3).
        seed: the first episode's env seed. None: 1000 for Meta-World (past the collection
            seeds); 0 for LIBERO, whose evaluation episodes are the suite's fixed initial states
            (episode i: state `seed + i`, at most 50 per task), never collected from.
        workers: parallel rollout processes (spawned); 1 runs in this process.
        batch_size: environments of one task each worker steps in lockstep, with one batched
            policy call per step (finished episodes drop out). Per-episode results are the same
            for every batch size; only the speed changes (docs/RESULTS.md, issue 11).
        videos_per_task: the first episodes of each task saved as mp4 (0: none).
        execution: "chunk" (run the predicted chunk open loop, then re-plan) or "ensemble"
            (re-plan every step and blend overlapping chunks, ACT's temporal ensembling).
        n_action_steps: ("chunk") actions executed per chunk before re-planning; None: all H.
        ensemble_decay: k in the exp(-k*i) weights of "ensemble" (i = 0 is the oldest).
        device: torch device of the policy in each worker.
        precision: the policy's arithmetic: "fp32", "bf16" (autocast) or "auto" (bf16 where the
            device runs it natively). Per-episode results depend on it (rollouts are chaotic),
            the success rate did not beyond noise (docs/RESULTS.md, issue 11).
        video_fps: frame rate of the rollout videos.
        output_dir: where eval_info.json, eval.md, success.png, videos/ and run_config.yaml go.
        overwrite: replace an evaluation already in output_dir (refused otherwise).
    """

    policy: Path = Path("runs/care_tiny_ft")
    env: EnvConfig = field(default_factory=MetaWorldEnvConfig)  # size/camera None: as trained
    episodes_per_task: int = 10
    seed: int | None = None  # Meta-World 1000 (disjoint from collection seeds); LIBERO 0 (initial state 0)
    workers: int = 2
    batch_size: int = 10  # environments stepped in lockstep per worker
    videos_per_task: int = 2
    execution: Literal["chunk", "ensemble"] = "chunk"  # open loop | temporal ensembling
    n_action_steps: int | None = None
    ensemble_decay: float = 0.1  # exp(-k*i) weights, ACT-style
    device: str = "cpu"
    precision: Literal["auto", "fp32", "bf16"] = "fp32"
    video_fps: int = 30
    output_dir: Path = Path("runs/eval")
    overwrite: bool = False  # replace an existing evaluation in output_dir

    def __post_init__(self):
        if self.execution not in ("chunk", "ensemble"):
            raise ValueError(f"execution must be chunk|ensemble, got {self.execution!r}")
        if self.episodes_per_task < 1 or self.workers < 1 or self.batch_size < 1:  # env.max_steps: the env config's
            raise ValueError(f"episodes_per_task, workers and batch_size must be >= 1, got "
                             f"{self.episodes_per_task}, {self.workers}, {self.batch_size}")
        if self.videos_per_task < 0:
            raise ValueError(f"videos_per_task must be >= 0, got {self.videos_per_task}")
        if self.ensemble_decay < 0:
            raise ValueError(f"ensemble_decay must be >= 0, got {self.ensemble_decay}")
        if self.seed is None:
            self.seed = 0 if self.env.type == "libero" else 1000


@dataclass
class CompareConfig:
    """`care eval compare`: success per task, mean +- std over training seeds, per method.

    Args:
        methods: label -> glob of `care eval` output folders, one folder per training seed
            (e.g. {"CARE": "runs/cmp/care_s*_eval"}). Every folder of every method must have
            evaluated the same tasks on the same episode seeds, or the comparison is refused.
        reference: a method label to compare every other method with, paired by seed and by
            episode. The training seed is the unit: the mean paired difference with a 95%
            t-interval over seeds and a bootstrap over seeds and their episodes; per seed the
            difference and episodes won/lost. None: no pairing.
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


@dataclass
class ServeConfig:
    """`care serve`: a fine-tuned policy behind a websocket (care.serve).

    Args:
        policy: a `care finetune` output folder.
        host: the address to bind; 127.0.0.1 by default (the protocol has no authentication:
            open it with --host 0.0.0.0 only on a network you trust).
        port: TCP port (0: any free one, printed at start).
        execution, n_action_steps, ensemble_decay: how each session runs its chunks (as `care eval`).
        device: torch device of the network; precision: "fp32" | "bf16" | "auto" (as `care eval`).
        max_message_mb: larger messages close the sending client's connection (code 1009).
    """

    policy: Path = Path("runs/care_tiny_ft")
    host: str = "127.0.0.1"
    port: int = 8000
    execution: Literal["chunk", "ensemble"] = "chunk"
    n_action_steps: int | None = None
    ensemble_decay: float = 0.1
    device: str = "cpu"
    precision: Literal["auto", "fp32", "bf16"] = "fp32"
    max_message_mb: float = 16.0

    def __post_init__(self):
        if not 0 <= self.port < 65536:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if self.max_message_mb <= 0:
            raise ValueError(f"max_message_mb must be > 0, got {self.max_message_mb}")


# ----------------------------------------------------------------------------------------
# Saving a run's resolved config
# ----------------------------------------------------------------------------------------

# ----------------------------------------------------------------------------------------
# Pseudo-labels from an inverse-dynamics model (care.labels)
# ----------------------------------------------------------------------------------------


@dataclass
class IDMConfig:
    """The inverse-dynamics model of `care label`: (o_t, o_{t+n}) -> the n actions between them.

    Args:
        type: "pixels" (a small conv net on the two frames) or "latent" (an MLP on the frozen
            latent action z(o_t, o_{t+n}) of a `care pretrain` folder of any method).
        pretrained: the `care pretrain` folder the latent variant reads (required for "latent").
        frame_interval: n for "pixels" (None: 4); "latent" uses its pretraining's n and refuses
            another.
        image_size: "pixels": frames are resized to this square size.
        width, hidden: conv channels (pixels) and MLP width.
        shift: "pixels": while training, DrQ's random shift of up to `shift` pixels, the same
            offset for both frames of a pair (so the motion between them is kept); 0: off.
            Against overfitting when few episodes are labelled.
        steps, batch_size, lr, weight_decay: AdamW with warm-up and cosine decay, L1 loss on
            actions normalised as fine-tuning does (1st/99th percentiles -> [-1, 1]).
    """

    type: Literal["pixels", "latent"] = "pixels"
    pretrained: Path | None = None
    frame_interval: int | None = None
    image_size: int = 64
    width: int = 32
    hidden: int = 512
    shift: int = 0
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4

    def __post_init__(self):
        if self.shift < 0 or (self.type == "latent" and self.shift):
            raise ValueError(f"idm.shift shifts the frames of the pixel IDM: it must be >= 0, and 0 for "
                             f"idm.type latent (got {self.shift} with type {self.type})")
        if self.type == "latent" and self.pretrained is None:
            raise ValueError("idm.type latent reads a pretrained model's latent: pass --idm.pretrained runs/<care pretrain folder>")
        if self.steps < 1 or self.batch_size < 1 or self.image_size < 16:
            raise ValueError(f"idm.steps and idm.batch_size must be >= 1 and idm.image_size >= 16, got "
                             f"{self.steps}, {self.batch_size}, {self.image_size}")


@dataclass
class PseudoLabelConfig:
    """`care label`: pseudo-label a dataset's unlabelled episodes with an inverse-dynamics model.

    The IDM trains on the actions of exactly the episodes `care finetune --episodes-per-task k
    --seed s` would train on (k successful episodes per task, chosen by `seed`), then labels every
    other episode. The output is a LeRobot v3 dataset: the same videos, tracks and states; the
    inferred episodes' `action` replaced by the IDM's, a per-frame `action_is_inferred` column and
    `meta/pseudo_labels.json` (which episodes are inferred, the IDM's held-out action error).
    Fine-tune on it with `configs/finetune/pseudo_labels.yaml` (every episode, the same seed).

    Args:
        dataset: a LeRobot v3 dataset with actions; only the labelled episodes' actions are read
            for training. The other episodes' actions, where the dataset has them, are read only
            to report the IDM's held-out error (never to train).
        output_dir: the pseudo-labelled dataset (written atomically).
        episodes_per_task: labelled episodes per task (the fine-tuning's `episodes_per_task`).
        seed: picks the labelled episodes (as `care finetune --seed`) and seeds the IDM.
        camera: which `observation.images.<camera>` (None: the first).
        device: torch device.
        overwrite: replace an existing output_dir.
    """

    dataset: Path = Path("data/mt10")
    output_dir: Path = Path("data/mt10_pseudo")
    episodes_per_task: int = 5
    seed: int = 0
    camera: str | None = None
    idm: IDMConfig = field(default_factory=IDMConfig)
    device: str = "cpu"
    overwrite: bool = False

    def __post_init__(self):
        if self.episodes_per_task < 1:
            raise ValueError(f"episodes_per_task must be >= 1, got {self.episodes_per_task}")


RUN_CONFIG_NAME = "run_config.yaml"  # the run's config; a model folder's config.json is the model's


def save_config(cfg: Any, out_dir: Path, name: str = RUN_CONFIG_NAME) -> Path:
    """Write the resolved config next to a run's outputs (atomically), as YAML that
    `--config` reads back."""
    import io as _io

    from care.io import atomic_write_bytes

    buf = _io.StringIO()
    draccus.dump(cfg, buf)
    path = Path(out_dir) / name
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))
    return path


# ----------------------------------------------------------------------------------------
# Latent-quality probes (paper §3; docs/DESIGN.md §6)
# ----------------------------------------------------------------------------------------


@dataclass
class ProbeConfig:
    """`care probe`: LP-MSE, S-PCFC and semantic accuracy of a pretrained model's latent action.

    Works on the `care pretrain` folder of any method (`PretrainedModel.action_latent`); every
    number is measured on episodes of `dataset` that no stage of the model trained on
    (`<model>/episodes.json`, and its stage-1 run's for two-stage methods). The settings below
    are the same for every method unless changed, so two probe.json files are comparable when
    their `settings` agree (care.probes).

    Args:
        model: a `care pretrain` output folder (it must hold the episodes.json the run wrote).
        dataset: a LeRobot v3 dataset with actions (LP-MSE reads them). The pretraining
            dataset probes its held-out ("val") episodes; another dataset (e.g. one collected
            on `--env.tasks SHARED`, tasks that share a scene) probes all its episodes.
        output_dir: receives probe.json, probe.md, latents.png and run_config.yaml.
        episodes: probe these episodes only (None: every held-out episode). An episode a
            stage of the model trained on is refused.
        probe_test_fraction: share of each task's held-out episodes that form probe-test (at
            least one episode per task on each side when the task has two or more; a task
            with one held-out episode goes to probe-train). The split is seeded by `seed` and
            by the task name alone, so it is the same for every model probed on a dataset.
    Linear probe (LP-MSE):
        epochs: full-batch Adam epochs of the linear layer.
        lr: its peak learning rate (cosine-decayed to 0 over `epochs`).
    Semantic probe:
        semantic_epochs, semantic_lr: full-batch Adam epochs and learning rate of the
            task classifier (a GRU over the 10-step sequences).
    Latents:
        batch_size: frame pairs per forward pass of the model.
        max_clips: at most this many clips per episode for LP-MSE and for S-PCFC each
            (evenly spaced over the episode; 0: all).
        camera: which `observation.images.<camera>` (None: the first, as pretraining's default).
        device: torch device of the model ("cpu", "cuda").
        seed: the probe split, every probe's initialisation and the random-weights reference.
        overwrite: replace a probe.json already in output_dir (refused otherwise).
    """

    model: Path = Path("runs/care_tiny")
    dataset: Path = Path("data/mt10")
    output_dir: Path = Path("runs/probe")
    episodes: list[int] | None = None
    probe_test_fraction: float = 0.5
    # --- linear probe ---
    epochs: int = 2000  # full-batch Adam on a convex loss: converges to the least-squares fit
    lr: float = 3e-2
    # --- semantic probe ---
    semantic_epochs: int = 300  # full-batch epochs of the GRU task classifier
    semantic_lr: float = 3e-3
    # --- latents ---
    batch_size: int = 64
    max_clips: int = 64  # per episode; Meta-World episodes have ~50-150 clips at n = 8
    camera: str | None = None
    device: str = "cpu"
    seed: int = 0
    overwrite: bool = False

    def __post_init__(self):
        if not 0.0 < self.probe_test_fraction < 1.0:
            raise ValueError(f"probe_test_fraction must be in (0, 1), got {self.probe_test_fraction}")
        if self.epochs < 1 or self.semantic_epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs, semantic_epochs and batch_size must be >= 1, got "
                             f"{self.epochs}, {self.semantic_epochs}, {self.batch_size}")
        if self.lr <= 0 or self.semantic_lr <= 0:
            raise ValueError(f"lr and semantic_lr must be > 0, got {self.lr}, {self.semantic_lr}")
        if self.max_clips < 0:
            raise ValueError(f"max_clips must be >= 0 (0: all clips), got {self.max_clips}")
        if self.episodes is not None:
            self.episodes = sorted({int(e) for e in self.episodes})
            if not self.episodes:
                raise ValueError("episodes is empty: give some episode indices, or leave it unset (all held-out ones)")


@dataclass
class ReportBenchmark:
    """Another benchmark's Tab. 1 on the same page (`benchmarks:` in a report config): success
    by method under that benchmark's own evaluation protocol, from its own results folder.

    Args:
        title: the section's heading, e.g. "LIBERO-Object".
        results: its committed results folder (<results>/<run>/s<k>/eval_info.json).
        tasks: the task names every eval_info.json must list, in order.
        episodes_per_task, eval_seed, max_steps: the protocol every eval_info.json must have used
            (LIBERO: eval_seed 0 = the suite's fixed initial states 0..episodes_per_task-1).
        protocol: fields every eval_info.json's `config.protocol` must have (LIBERO:
            {"suite": "libero_object", "init_states": "fixed", "num_steps_wait": 10}).
        methods: the runs, in row order; reference: the run every success is paired with.
        seeds: the pipeline seeds (empty: the report's).
        claims: orderings "a > b" over runs (success), marked holds / reversed / not separated.
        paper: run -> the paper's success on this benchmark; paper_rows: run -> that row's name.
        precision: the training precision of runs whose files do not record it (as the report's).
    """

    title: str = ""
    results: Path = Path("results")
    tasks: list[str] = field(default_factory=list)
    episodes_per_task: int = 20
    eval_seed: int = 0
    max_steps: int = 280
    protocol: dict[str, str] = field(default_factory=dict)  # compared as text
    methods: list[str] = field(default_factory=list)
    reference: str = "no_pretrain"
    seeds: list[int] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)
    paper: dict[str, float] = field(default_factory=dict)
    paper_rows: dict[str, str] = field(default_factory=dict)
    precision: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if not self.title or not self.tasks or not self.methods:
            raise ValueError(f"report benchmark {self.title!r}: title, tasks and methods are required")
        if self.episodes_per_task < 1 or self.max_steps < 1:
            raise ValueError(f"report benchmark {self.title!r}: episodes_per_task and max_steps must be >= 1")


@dataclass
class ReportCurve:
    """A curve on the report page (`curves:` in a report config): success against one quantity
    (labelled episodes per task, episodes of video), one line per series, as a table and a plot.

    Args:
        name: short name; also the `notes:` section of its paragraph.
        title: the section's heading.
        x_label: what x is, e.g. "labelled episodes per task".
        series: legend label -> {x: run}. x is a number, or "all" for a run that fine-tuned on
            every training episode (its x is read from its policy_config.json: training episodes
            per task, mean over seeds).
        compare: orderings "A > B" over series labels, tested at every x both series have (paired
            over the seeds both runs have, two-level interval, the usual verdict words).
        min_seeds: a point with fewer seeds is drawn hollow and marked in the table.
        log_x: plot x on a log scale.
    """

    name: str = ""
    title: str = ""
    x_label: str = "x"
    series: dict[str, dict[str, str]] = field(default_factory=dict)
    compare: list[str] = field(default_factory=list)
    min_seeds: int = 3
    log_x: bool = True

    def __post_init__(self):
        if not self.name or not self.title or not self.series:
            raise ValueError(f"report curve {self.name!r}: name, title and series are required")
        for label, points in self.series.items():
            for x in points:
                if str(x) != "all":
                    try:
                        if float(x) <= 0 and self.log_x:
                            raise ValueError
                    except ValueError:
                        raise ValueError(f"curve {self.name!r}, series {label!r}: x {x!r} is not a positive number "
                                         "or 'all'") from None
        for claim in self.compare:
            a, sep, b = (t.strip() for t in claim.partition(">"))
            if not sep or a not in self.series or b not in self.series:
                raise ValueError(f"curve {self.name!r}: compare {claim!r} is not 'A > B' over its series "
                                 f"({', '.join(self.series)})")


@dataclass
class ReportConfig:
    """`care report`: the paper's tables on our benchmark, rebuilt from committed result files.

    Reads only small files under `results` (never a checkpoint), laid out per run and pipeline
    seed (seed k = pretraining seed k, then fine-tuning seed k):
        <results>/<run>/s<k>/eval_info.json     `care eval` (success; Tab. 1, 4 and the video rows)
        <results>/<run>/s<k>/probe.json         `care probe` on the pretraining dataset (Tab. 2)
        <results>/<run>/s<k>/probe_shared.json  `care probe` on the SHARED-scene set (Tab. 3)
        <results>/<run>/s<k>/val_metrics.json   the pretraining's held-out diagnostics (Tab. 4 latent loss)
        <results>/<run>/s<k>/policy_config.json the fine-tuning's held-out action L1 (optional column)
    A file a table needs and that is absent is named on the page and by `--missing`; a file
    that does not match the protocol (other tasks, evaluation seeds, episodes or step limit;
    probes with other settings) is an error naming the file and the field.

    Args:
        title: the page's heading.
        results: the committed results folder.
        seeds: the pipeline seeds every run is expected to have.
        more_seeds: further pipeline seeds some runs have (a comparison measured beyond `seeds`):
            read where they exist, not required by the page; every row and every pairing uses
            all the seeds its run(s) have.
        more_seeds_runs: the runs planned on `more_seeds` too: `--missing` lists their files
            there that are still absent (the page reads them where they exist, as above).
        tasks, episodes_per_task, eval_seed, max_steps: the evaluation protocol every
            eval_info.json must have used (tasks: a suite name or comma-separated env names).
        reference: the run every success is paired with (seed k with seed k): no pretraining.
        labels: run -> how the page names it.
        methods / video / ablation: the runs of Tab. 1, of Tab. 1's pretraining-video rows and of
            Tab. 4, in row order; probes: the pretrained runs of Tab. 2 and 3.
        claims: table ("methods", "video", "ablation", "lp_mse", "s_pcfc", "semantic") -> the
            paper's orderings as "a > b" over runs (better first; for LP-MSE and S-PCFC lower is
            better, and "a > b" still reads "a is better"); the page says which hold here.
        paper: run -> the paper's numbers for the row it stands for ("success", "lp_mse",
            "s_pcfc", "semantic", "latent_loss"); paper_rows: run -> that row's name in the paper.
        benchmarks: further benchmarks' success tables on the same page (ReportBenchmark), e.g.
            LIBERO-Object beside Meta-World.
        recipes: beyond the paper, the few-label recipe ladder: runs in row order, each one change
            to the run it builds on (`recipe_base`: run -> that run; default the row above), paired
            with it and with `reference` over seeds.
        ceiling: the run the recipes are measured against as a fraction (label-supervised), and
            recipe_goal: the fraction to reach (0.9: at least 90% of the ceiling's success).
        notes: section ("methods", "video", "probes", "semantic", "ablation", "recipes") -> a
            paragraph printed under that table: what the diagnostics say about its orderings,
            written by whoever read them. A number in a note is a template the builder fills from
            the result files, e.g. {mean:care} or {diff:care-no_pretrain} (vocabulary in
            care.report.notes); a quantity the files cannot give fails the build.
        precision: the training precision ("fp32", "bf16") of runs whose files do not record it
            (job.json `training_precision`, else an explicit `mixed_precision` in the run's
            finetune/pretrain config), as "run" or "run/s<k>" -> precision; the page says which
            precisions were declared here. Two rows at different precisions are never compared.
        references: precision -> the run each row of that precision is paired with in the
            "Δ vs reference" columns (default: `reference` for every precision).
        summary: the runs of the short results table written beside the page (summary.md, the
            README's table), in row order.
        curves: beyond the paper, success against a quantity (ReportCurve: label efficiency,
            video scaling), each a table, a plot and its `notes:` paragraph (section = its name).
        allow_missing: build from the seeds every run of the page has (the page lists them)
            instead of the configured seeds when some are missing.
        output_dir: receives README.md and the PNG plots.
        missing: only list what is missing (and the runs it belongs to), write nothing.
    """

    title: str = "CARE on Meta-World MT10: the paper's tables"
    results: Path = Path("results/paper_mt10")
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    more_seeds: list[int] = field(default_factory=list)
    more_seeds_runs: list[str] = field(default_factory=list)
    tasks: str = "MT10"
    episodes_per_task: int = 20
    eval_seed: int = 1000
    max_steps: int = 200
    reference: str = "no_pretrain"
    labels: dict[str, str] = field(default_factory=dict)
    methods: list[str] = field(default_factory=list)
    video: list[str] = field(default_factory=list)
    ablation: list[str] = field(default_factory=list)
    probes: list[str] = field(default_factory=list)
    claims: dict[str, list[str]] = field(default_factory=dict)
    paper: dict[str, dict[str, float]] = field(default_factory=dict)
    paper_rows: dict[str, str] = field(default_factory=dict)
    benchmarks: list[ReportBenchmark] = field(default_factory=list)
    recipes: list[str] = field(default_factory=list)
    recipe_base: dict[str, str] = field(default_factory=dict)
    ceiling: str | None = None
    recipe_goal: float | None = None
    notes: dict[str, str] = field(default_factory=dict)
    precision: dict[str, str] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)
    summary: list[str] = field(default_factory=list)
    curves: list[ReportCurve] = field(default_factory=list)
    allow_missing: bool = False
    output_dir: Path = Path("docs/report")
    missing: bool = False

    def __post_init__(self):
        if not self.seeds:
            raise ValueError("seeds is empty: give the pipeline seeds, e.g. [0, 1, 2]")
        if self.episodes_per_task < 1 or self.max_steps < 1:
            raise ValueError(f"episodes_per_task and max_steps must be >= 1, got {self.episodes_per_task}, {self.max_steps}")
        titles = [b.title for b in self.benchmarks]
        if len(set(titles)) != len(titles):
            raise ValueError(f"benchmarks: titles must differ, got {titles}")
        unknown = sorted(set(self.recipe_base) - set(self.recipes))
        if unknown:
            raise ValueError(f"recipe_base names run(s) {unknown} that are not in recipes")
        if self.recipe_goal is not None and (self.ceiling is None or not 0 < self.recipe_goal <= 1):
            raise ValueError(f"recipe_goal is a fraction in (0, 1] of the ceiling run's success and needs `ceiling`, "
                             f"got recipe_goal={self.recipe_goal}, ceiling={self.ceiling}")
        sections = ["methods", "video", "probes", "semantic", "ablation", "recipes", *(c.name for c in self.curves)]
        unknown = sorted(set(self.notes) - set(sections))
        if unknown:
            raise ValueError(f"notes: unknown section(s) {unknown}; use {', '.join(sections)}")
        names = [c.name for c in self.curves]
        if len(set(names)) != len(names) or set(names) & {"methods", "video", "probes", "semantic", "ablation",
                                                           "recipes"}:
            raise ValueError(f"curves: names must differ from each other and from the tables', got {names}")
        if set(self.more_seeds) & set(self.seeds):
            raise ValueError(f"more_seeds {self.more_seeds} repeats seeds of `seeds` {self.seeds}")
        if self.more_seeds_runs and not self.more_seeds:
            raise ValueError(f"more_seeds_runs {self.more_seeds_runs} names runs planned on further seeds, "
                             "but more_seeds is empty")
        tables = {"methods", "video", "ablation", "lp_mse", "s_pcfc", "semantic"}
        unknown = sorted(set(self.claims) - tables)
        if unknown:
            raise ValueError(f"claims: unknown table(s) {unknown}; use {sorted(tables)}")

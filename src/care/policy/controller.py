"""CarePolicy: a fine-tuned VLA that drives a robot (paper §2.3, docs/DESIGN.md §4).

    from care.policy import CarePolicy

    policy = CarePolicy.from_pretrained("runs/care_tiny_ft")     # a `care finetune` folder
    policy.reset()                                               # at the start of every episode
    action = policy.select_action(image, "close the drawer")     # (H, W, 3) uint8 -> (A,)
    actions = policy.select_action(images, instructions)         # (B, H, W, 3), [str]*B -> (B, A)
    action = policy.select_action({                              # a LeRobot-style observation
        "observation.images.corner": image,                      #   (H, W, 3) or (B, H, W, 3)
        "observation.state": state,                              #   when the policy reads one
        "observation.images.wrist_image": wrist,                 #   when it reads a wrist camera
        "task": "close the drawer",
    })
    action = policy.select_action(image, instruction, state, wrist=wrist_image)   # the same, unpacked

Frames must have the size the policy was trained on (`policy.frame_hw`, the dataset's stored
(H, W); `care eval` renders at it, `care serve` checks it the same way): a frame of another size
or aspect is an error that names the expected size, never silently squeezed.

Inside: the frame is resized to the model's input exactly as the training clips were
(`care.data.clips.resize_frames`), the state (if the policy reads one) is normalised with the
bounds saved beside the weights, the policy view of the latent VLM gives the K placeholder
hidden states, the action head predicts a chunk of H normalised actions, they are mapped back
to the robot's range, and the chunk executor hands out one action per call ("chunk": open
loop, re-plan after H; "ensemble": ACT's temporal ensembling, re-plan every call).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from care.models.precision import autocast, resolve_precision
from care.models.vla import CareVLA
from care.policy.chunking import ChunkExecutor
from care.policy.folder import load_policy_model
from care.policy.normalize import ActionNormalizer

IMAGE_PREFIX = "observation.images."
STATE_KEY = "observation.state"


def _check_images(images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected images (B, H, W, 3) or one (H, W, 3), got shape {images.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images (0-255, as the simulator renders them), got {images.dtype}")
    return images


def preprocess_images(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (B, H, W, 3) frames -> uint8 (B, 3, size, size), resized exactly as the training
    clips are (care.data.clips.resize_frames: cv2.INTER_AREA; a no-op at the stored size)."""
    from care.data.clips import resize_frames

    images = _check_images(images)
    frames = resize_frames(images, size)
    return torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))  # (B, 3, S, S)


class CarePolicy:
    """A fine-tuned care policy with its normalisers and chunk queue (see module docstring).

    Args:
        model: the merged network (CareVLA).
        normalizer: action bounds saved with it; state_normalizer: state bounds (or None).
        meta: policy_config.json.
        execution: "chunk" (open loop: run the chunk, then re-plan) or "ensemble" (re-plan
            every call, blend overlapping chunks with exp(-k·i) weights; ACT).
        n_action_steps: ("chunk") actions executed from each chunk; None: all H.
        ensemble_decay: k of "ensemble".
        device: where the network runs.
        precision: "fp32", "bf16" (autocast; the weights stay fp32) or "auto" (bf16 where the
            device runs it natively; care.models.precision).
    """

    def __init__(self, model: CareVLA, normalizer: ActionNormalizer, meta: dict, execution: str = "chunk",
                 n_action_steps: int | None = None, ensemble_decay: float = 0.1, device: str | torch.device = "cpu",
                 state_normalizer: ActionNormalizer | None = None, precision: str = "fp32"):
        self.model = model.to(device).eval()
        self.normalizer = normalizer
        self.state_normalizer = state_normalizer
        self.meta = meta
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        self.executor = ChunkExecutor(self.chunk_size, execution, ensemble_decay, n_action_steps)
        self._batch: int | None = None
        self._single = False  # the last call passed one image, not a batch

    @classmethod
    def from_pretrained(cls, path: str | Path, execution: str = "chunk", n_action_steps: int | None = None,
                        ensemble_decay: float = 0.1, device: str | torch.device = "cpu",
                        precision: str = "fp32") -> "CarePolicy":
        model, normalizer, state_normalizer, meta = load_policy_model(path)
        return cls(model, normalizer, meta, execution, n_action_steps, ensemble_decay, device, state_normalizer,
                   precision)

    # --- what the policy expects ---
    @property
    def image_size(self) -> int:
        return int(self.model.vlm.cfg.image_size)

    @property
    def frame_hw(self) -> tuple[int, int]:
        """(H, W) of the frames the policy was trained on, the size it accepts (an older folder
        without it in its meta: the model's square input)."""
        hw = self.meta.get("frame_hw") or (self.image_size, self.image_size)
        return int(hw[0]), int(hw[1])

    def check_frame_size(self, images: np.ndarray, what: str = "image", camera: str | None = None) -> None:
        """A (B, H, W, 3) batch of another (H, W) than `frame_hw` is a ValueError naming both."""
        if tuple(images.shape[1:3]) != self.frame_hw:
            h, w = self.frame_hw
            raise ValueError(f"{what} is {images.shape[2]}x{images.shape[1]} (W x H); this policy was trained on "
                             f"{w}x{h} frames of camera {(camera or self.camera)!r} (resize or crop to {w}x{h} first)")

    @property
    def chunk_size(self) -> int:
        return int(self.model.head.config.chunk_size)

    @property
    def action_dim(self) -> int:
        return int(self.model.head.action_dim)

    @property
    def state_dim(self) -> int:
        return self.model.state_dim

    @property
    def state_indices(self) -> list[int] | None:
        """Which dimensions of the dataset's / simulator's full state the policy reads (None: all)."""
        idx = self.meta.get("state_indices")
        return None if idx is None else [int(i) for i in idx]

    @property
    def camera(self) -> str | None:
        return self.meta.get("camera")

    @property
    def wrist_camera(self) -> str | None:
        """The second camera the policy reads (LIBERO's "wrist_image"), or None."""
        return self.meta.get("wrist_camera")

    def reset(self) -> None:
        """Forget queued actions: call at the start of every episode."""
        self.executor.reset()
        self._batch = None
        self._single = False

    def needs_frame(self) -> bool:
        """Whether the next `select_action` runs the network, i.e. reads its image. When it does
        not ("chunk" execution between plans), the caller may pass image=None and skip the render."""
        return self.executor.needs_plan()

    def keep(self, rows) -> None:
        """Keep only these rows of the batch (and of its pending actions): a lockstep batch of
        environments whose finished members drop out. The next call passes len(rows) inputs."""
        if self._batch is None:
            raise RuntimeError("keep() before the first select_action() of this batch")
        rows = [int(r) for r in rows]
        if not rows or min(rows) < 0 or max(rows) >= self._batch:
            raise ValueError(f"keep({rows}): rows must be a non-empty subset of 0..{self._batch - 1}")
        self.executor.keep(rows)
        self._batch = len(rows)

    def _state_tensor(self, state, batch: int) -> torch.Tensor | None:
        if self.state_dim == 0:
            return None
        if state is None:
            raise ValueError(f"this policy reads a {self.state_dim}-d state: pass `{STATE_KEY}` (the full "
                             f"recorded state; it picks dims {self.state_indices})")
        s = np.asarray(state, dtype=np.float64)
        s = s[None] if s.ndim == 1 else s
        if s.ndim != 2 or s.shape[0] != batch:
            raise ValueError(f"expected a state (S,) or (B={batch}, S), got shape {np.shape(state)}")
        if not np.all(np.isfinite(s)):
            raise ValueError("the state contains NaN or inf")
        if self.state_indices is not None:
            if s.shape[1] <= max(self.state_indices):
                raise ValueError(f"the state has {s.shape[1]} dims; this policy reads dims {self.state_indices}")
            s = s[:, self.state_indices]
        if s.shape[1] != self.state_dim:
            raise ValueError(f"expected a {self.state_dim}-d state, got {s.shape[1]} dims")
        return torch.from_numpy(self.state_normalizer.normalize(s)).float().to(self.device)  # (B, S) in [-1, 1]

    def _wrist_tensor(self, wrist, batch: int) -> torch.Tensor | None:
        if not self.model.has_wrist:
            return None
        if wrist is None:
            raise ValueError(f"this policy also reads the {self.wrist_camera!r} camera: pass its image "
                             f"(`{IMAGE_PREFIX}{self.wrist_camera}`, or wrist=...)")
        w = np.asarray(wrist)
        w = w[None] if w.ndim == 3 else w
        if len(w) != batch:
            raise ValueError(f"{batch} image(s) but {len(w)} wrist image(s)")
        self.check_frame_size(_check_images(w), "wrist image", self.wrist_camera)
        return preprocess_images(w, self.image_size).to(self.device)

    @torch.no_grad()
    def predict_chunk(self, images: np.ndarray, instructions: list[str], state=None, wrist=None) -> np.ndarray:
        """(B, H, W, 3) uint8 + B instructions [+ state] [+ B wrist images] -> (B, chunk_size, A)
        actions in the robot's range. Stateless: no queue involved."""
        self.check_frame_size(_check_images(images))
        obs = preprocess_images(images, self.image_size).to(self.device)
        if len(instructions) != obs.shape[0]:
            raise ValueError(f"{obs.shape[0]} images but {len(instructions)} instructions")
        state_t, wrist_t = self._state_tensor(state, obs.shape[0]), self._wrist_tensor(wrist, obs.shape[0])
        with autocast(self.precision, self.device):
            pred = self.model(obs, list(instructions), state_t, wrist_t).float()  # (B, H, A)
        return self.normalizer.unnormalize(pred.cpu().numpy().astype(np.float64)).astype(np.float32)

    def _unpack(self, observation: dict) -> tuple[np.ndarray, list[str] | str, object, object]:
        """A LeRobot-style observation dict -> (images, instruction(s), state, wrist images)."""
        wrist_key = IMAGE_PREFIX + self.wrist_camera if self.wrist_camera else None
        cams = [k for k in observation if k.startswith(IMAGE_PREFIX) and k != wrist_key]
        if not cams:
            raise ValueError(f"the observation has no `{IMAGE_PREFIX}<camera>` key (keys: {sorted(observation)})")
        key = IMAGE_PREFIX + self.camera if self.camera and IMAGE_PREFIX + self.camera in observation else None
        if key is None:
            if len(cams) > 1:
                raise ValueError(f"this policy was trained on camera {self.camera!r}; the observation has {cams}")
            key = cams[0]
        if "task" not in observation:
            raise ValueError("the observation has no `task` (the instruction)")
        return observation[key], observation["task"], observation.get(STATE_KEY), observation.get(wrist_key)

    def select_action(self, image, instruction: str | list[str] | None = None, state=None, wrist=None) -> np.ndarray:
        """The action to execute now: (H, W, 3), str -> (A,); (B, H, W, 3), [str]*B -> (B, A);
        or one LeRobot-style observation dict (see the module docstring).

        Runs the network only when the queue needs a new chunk ("chunk": every H calls;
        "ensemble": every call). A batch keeps its size until `reset()` (or `keep(rows)`).
        """
        if image is None:  # a step between plans (see needs_frame): the next queued action
            if self._batch is None or self.executor.needs_plan():
                raise ValueError("select_action(None, ...): this step plans a new chunk and needs the frame")
            action = self.executor.next_action()
            return action[0] if self._single else action
        if isinstance(image, dict):
            if instruction is not None or state is not None or wrist is not None:
                raise ValueError("pass either an observation dict or image + instruction (+ state), not both")
            image, instruction, state, wrist = self._unpack(image)
        if instruction is None:
            raise ValueError("select_action needs an instruction")
        single = np.ndim(image) == 3
        images = _check_images(np.asarray(image)[None] if single else image)
        self.check_frame_size(images)
        instructions = [instruction] if isinstance(instruction, str) else list(instruction)
        if len(instructions) != len(images):
            raise ValueError(f"{len(images)} image(s) but {len(instructions)} instruction(s)")
        if self._batch is not None and self._batch != len(images):
            raise ValueError(f"batch size changed from {self._batch} to {len(images)} without reset()")
        self._batch, self._single = len(images), single
        if self.executor.needs_plan():
            self.executor.add_chunk(self.predict_chunk(images, instructions, state, wrist))
        action = self.executor.next_action()  # (B, A)
        return action[0] if single else action

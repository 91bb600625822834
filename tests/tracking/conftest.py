"""Tracking fixtures: a small local CoTracker hub repository, for the adapter to load for real.

It mirrors CoTracker's own layout: a `hubconf.py` whose entry point
`cotracker3_offline(*, pretrained=True, **kwargs)` builds a predictor from a package in the
repository, `predictor.model` holds the network whose weights the checkpoint carries, and
`predictor(video, queries=...)` returns (B, T, N, 2) tracks and (B, T, N) bool visibility.
Its "network" moves every query point by a learned shift per frame; the shift comes from the
checkpoint, so a test also proves the checkpoint was loaded. Point 5 blinks (visible on even
frames only), like an occluded point.
"""

import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from care.configs import CoTrackerConfig

SHIFT = (1.5, -1.0)  # px per frame, stored in the checkpoint

HUBCONF = '''
import torch

from shiftcotracker.predictor import ShiftPredictor


def cotracker3_offline(*, pretrained: bool = True, **kwargs):
    """Same name and call signature as CoTracker's entry point."""
    if pretrained:
        raise RuntimeError("the real entry point would download weights here")
    return ShiftPredictor()
'''

PREDICTOR = '''
import torch


class ShiftNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.shift = torch.nn.Parameter(torch.zeros(2))  # set by the checkpoint


class ShiftPredictor(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.model = ShiftNet()
        self.model.eval()

    @torch.no_grad()
    def forward(self, video, queries=None, segm_mask=None, grid_size=0, grid_query_frame=0,
                backward_tracking=False):
        B, T, C, H, W = video.shape
        assert C == 3 and video.dtype == torch.float32, (video.shape, video.dtype)
        assert video.max() > 1.0, "CoTracker expects 0..255, not 0..1"
        assert queries is not None and queries.shape[0] == B and queries.shape[2] == 3
        t = torch.arange(T, dtype=torch.float32)[None, :, None, None]  # (1, T, 1, 1)
        tracks = queries[:, None, :, 1:] + t * self.model.shift  # (B, T, N, 2)
        visible = torch.ones(B, T, queries.shape[1], dtype=torch.bool)
        visible[:, :, 5] = torch.arange(T) % 2 == 0  # point 5 blinks, like an occluded point
        return tracks, visible
'''


def write_hub_repo(root: Path) -> Path:
    (root / "shiftcotracker").mkdir(parents=True)
    (root / "shiftcotracker" / "__init__.py").write_text("")
    (root / "shiftcotracker" / "predictor.py").write_text(textwrap.dedent(PREDICTOR))
    (root / "hubconf.py").write_text(textwrap.dedent(HUBCONF))
    return root


@pytest.fixture
def fake_cotracker(tmp_path) -> SimpleNamespace:
    """.cfg: a CoTrackerConfig pointing at the repository and its checkpoint; .shift: px per frame."""
    repo = write_hub_repo(tmp_path / "co-tracker")
    ckpt = tmp_path / "scaled_offline.pth"
    torch.save({"shift": torch.tensor(SHIFT)}, ckpt)
    return SimpleNamespace(cfg=CoTrackerConfig(repo_dir=repo, checkpoint=ckpt), shift=SHIFT, repo=repo, checkpoint=ckpt)

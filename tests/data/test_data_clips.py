"""care.data.clips: clip items, the per-worker episode cache, resizing, episode selection."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from care.configs import ClipConfig
from care.data import video as V
from care.data.clips import ClipDataset, ConcatClips, select_episodes_per_task, split_episodes
from care.data.lerobot import LeRobotDataset
from care.errors import DatasetError
from helpers import make_dataset, make_episodes


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("clips"), episodes=3, T=[20, 12, 16], size=32)


def test_item_shapes_dtypes_and_values(root):
    eps = make_episodes(3, [20, 12, 16], 32)
    ds = ClipDataset(root, frame_interval=4)
    assert len(ds) == (20 - 4) + (12 - 4) + (16 - 4)
    item = ds[0]
    assert item["obs"].shape == (3, 32, 32) and item["obs"].dtype == torch.uint8
    assert item["future_obs"].shape == (3, 32, 32) and item["future_obs"].dtype == torch.uint8
    assert item["instruction"] == "close the drawer"
    assert item["tracks"].shape == (6, 2) and item["tracks"].dtype == torch.float32
    assert item["future_tracks"].shape == (6, 2)
    assert item["visible"].shape == (6,) and item["visible"].dtype == torch.bool
    assert item["actions"].shape == (4, 4) and item["actions"].dtype == torch.float32  # H defaults to n
    assert item["action_is_pad"].shape == (4,) and item["action_is_pad"].dtype == torch.bool
    assert item["state"].shape == (5,)
    for k in ("episode_index", "frame_index", "task_index"):
        assert item[k].dtype == torch.int64

    # item of episode 1 at t=3: values match the source episode
    i = (20 - 4) + 3
    item = ds[i]
    ep = eps[1]
    assert int(item["episode_index"]) == 1 and int(item["frame_index"]) == 3 and int(item["task_index"]) == 1
    np.testing.assert_array_equal(item["actions"].numpy(), ep.action[3:7])
    assert not item["action_is_pad"].any()
    np.testing.assert_array_equal(item["state"].numpy(), ep.state[3])
    np.testing.assert_array_equal(item["tracks"].numpy(), ep.tracks[3])
    np.testing.assert_array_equal(item["future_tracks"].numpy(), ep.tracks[7])
    np.testing.assert_array_equal(item["visible"].numpy(), ep.visible[3] & ep.visible[7])
    obs = item["obs"].permute(1, 2, 0).numpy().astype(int)
    fut = item["future_obs"].permute(1, 2, 0).numpy().astype(int)
    assert np.abs(obs - ep.frames["corner"][3]).mean() < 3.0
    assert np.abs(fut - ep.frames["corner"][7]).mean() < 3.0
    assert np.abs(fut - ep.frames["corner"][3]).mean() > np.abs(fut - ep.frames["corner"][7]).mean()


def test_action_padding_past_the_end(root):
    eps = make_episodes(3, [20, 12, 16], 32)
    ds = ClipDataset(root, frame_interval=2, action_horizon=6)
    i = (20 - 2) + (12 - 2) - 1  # last item of episode 1: t = 9, T = 12
    item = ds[i]
    assert int(item["frame_index"]) == 9
    assert item["action_is_pad"].tolist() == [False, False, False, True, True, True]
    a = eps[1].action
    np.testing.assert_array_equal(item["actions"].numpy(), np.stack([a[9], a[10], a[11], a[11], a[11], a[11]]))


def test_interval_zero_serves_single_frames(root):
    ds = ClipDataset(root, frame_interval=0)
    assert len(ds) == 20 + 12 + 16
    item = ds[len(ds) - 1]
    assert "future_obs" not in item and "future_tracks" not in item
    assert item["actions"].shape == (1, 4) and item["visible"].shape == (6,)


def test_resize_scales_tracks(root):
    eps = make_episodes(3, [20, 12, 16], 32)
    ds = ClipDataset(root, frame_interval=1, clip=ClipConfig(image_size=16))
    item = ds[5]
    assert item["obs"].shape == (3, 16, 16)
    expected = (eps[0].tracks[5] + 0.5) * 0.5 - 0.5  # pixel-centre convention
    np.testing.assert_allclose(item["tracks"].numpy(), expected, rtol=1e-6)
    # the resized frame is the area-average of the stored one
    stored = LeRobotDataset(root).episode_frames(0)[5].astype(float)
    pooled = stored.reshape(16, 2, 16, 2, 3).mean((1, 3))
    assert np.abs(item["obs"].permute(1, 2, 0).numpy() - pooled).mean() < 1.0


def test_episodes_are_decoded_once(root):
    ds = ClipDataset(root, frame_interval=3)
    before = V.DECODE_STATS["spans"]
    for i in np.random.default_rng(0).permutation(len(ds)):
        ds[int(i)]
    assert ds.decode_count == 3
    assert V.DECODE_STATS["spans"] - before == 3
    # a cache of one episode decodes again only when the episode changes
    small = ClipDataset(root, frame_interval=3, clip=ClipConfig(cache_episodes=1, decode="episode"))
    for i in range(len(small)):
        small[i]
    assert small.decode_count == 3


@pytest.mark.parametrize("size", [None, 24])
def test_frame_decoding_serves_the_same_items_and_decodes_little(tmp_path, size):
    # 40-frame episodes written with a keyframe every 10: an item decodes at most 9 + n + 1 frames
    root = make_dataset(tmp_path, episodes=3, T=[40, 33, 40], size=32, cameras=("corner", "wrist"))
    clip = dict(image_size=size, wrist_camera="wrist")
    whole = ClipDataset(root, frame_interval=4, clip=ClipConfig(decode="episode", **clip))
    spans = ClipDataset(root, frame_interval=4, clip=ClipConfig(decode="frames", **clip))
    # "auto" picks frames only when the served episodes do not fit the cache
    assert ClipDataset(root, frame_interval=4, clip=ClipConfig(cache_episodes=3)).decode == "episode"
    assert ClipDataset(root, frame_interval=4, clip=ClipConfig(cache_episodes=2)).decode == "frames"
    before = V.DECODE_STATS["frames"]
    order = np.random.default_rng(0).permutation(len(spans))[:30]
    for i in order:
        a, b = whole[int(i)], spans[int(i)]
        assert a.keys() == b.keys()
        for k in a:
            assert (a[k] == b[k]) if isinstance(a[k], str) else torch.equal(a[k], b[k]), (int(i), k)
    whole_frames = 2 * (40 + 33 + 40)  # the episode decoder read every frame of both cameras once
    per_item = (V.DECODE_STATS["frames"] - before - whole_frames) / len(order)
    assert per_item <= (9 + 5) + (9 + 1)  # main camera t..t+n, wrist camera t, each from a keyframe
    assert spans.decode_count == 2 * len(order)


def test_clip_config_rejects_an_unknown_decode_mode():
    with pytest.raises(ValueError, match="clip.decode must be auto, episode or frames"):
        ClipConfig(decode="lazy")
    with pytest.raises(ValueError, match="cache_episodes"):
        ClipConfig(cache_episodes=0)


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader(root, workers):
    ds = ClipDataset(root, frame_interval=4, episodes=[0, 2])
    ds[0]  # the parent has a video open when the workers fork: they must not hang on it
    loader = DataLoader(ds, batch_size=8, shuffle=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(0), timeout=60 if workers else 0)
    seen = 0
    for batch in loader:
        assert batch["obs"].shape[1:] == (3, 32, 32) and batch["obs"].dtype == torch.uint8
        assert batch["actions"].shape[1:] == (4, 4)
        assert isinstance(batch["instruction"], list) and len(batch["instruction"]) == len(batch["obs"])
        assert set(batch["episode_index"].tolist()) <= {0, 2}
        seen += len(batch["obs"])
    assert seen == len(ds) == 16 + 12


def test_require_tracks_and_actions(tmp_path):
    root = make_dataset(tmp_path, episodes=2, T=8, size=16, with_tracks=False, with_actions=False)
    with pytest.raises(DatasetError, match="run `care track"):
        ClipDataset(root, frame_interval=2, require_tracks=True)
    with pytest.raises(DatasetError, match="no actions"):
        ClipDataset(root, frame_interval=2, require_actions=True)
    ds = ClipDataset(root, frame_interval=2)
    item = ds[0]
    assert "tracks" not in item and "actions" not in item and "state" in item
    with pytest.raises(DatasetError, match="no clips"):
        ClipDataset(root, frame_interval=8)
    with pytest.raises(DatasetError, match="not in the dataset"):
        ClipDataset(root, episodes=[5])


def test_split_and_select_are_stratified_and_reproducible(tmp_path):
    root = make_dataset(tmp_path, episodes=12, T=3, size=16, with_tracks=False)  # 6 per task
    ds = LeRobotDataset(root)
    train, val = split_episodes(ds, 2, seed=0)
    assert len(val) == 4 and sorted(train + val) == list(range(12))
    tasks_of = {e: ds.episode_meta(e)["env_name"] for e in range(12)}
    assert sorted(tasks_of[e] for e in val) == sorted(["drawer-close-v3"] * 2 + ["button-press-topdown-v3"] * 2)
    assert split_episodes(ds, 2, seed=0) == (train, val)
    assert split_episodes(ds, 2, seed=1) != (train, val)
    assert split_episodes(ds, 10, seed=0)[0] != []  # every task keeps a training episode

    picked = select_episodes_per_task(ds, 2, seed=0, exclude=val)
    assert len(picked) == 4 and not set(picked) & set(val)
    assert sorted(tasks_of[e] for e in picked).count("drawer-close-v3") == 2
    assert set(picked) <= set(select_episodes_per_task(ds, 3, seed=0, exclude=val))  # nested
    assert select_episodes_per_task(ds, None, seed=0, exclude=val) == train
    with pytest.warns(UserWarning, match=r"5 episodes per task asked, only 4 of drawer-close-v3"):
        select_episodes_per_task(ds, 5, seed=0, exclude=val)
    # ClipDataset and paths work too
    assert split_episodes(root, 2, seed=0) == (train, val)


def test_concat_clips_serve_every_part_and_only_the_fields_all_have(root, make_dataset):
    other = make_dataset(episodes=2, T=10, size=32, with_tracks=False)
    a, b = ClipDataset(root, frame_interval=4), ClipDataset(other, frame_interval=4)
    both = ConcatClips([a, b])
    assert len(both) == len(a) + len(b) and both.served_size == (32, 32)
    for i in (0, len(a) - 1):  # the first part's clips, then the second's, in order
        assert torch.equal(both[i]["obs"], a[i]["obs"]) and both[i]["instruction"] == a[i]["instruction"]
    for j in (0, len(b) - 1):
        assert torch.equal(both[len(a) + j]["obs"], b[j]["obs"])
        assert int(both[len(a) + j]["episode_index"]) == int(b[j]["episode_index"])  # within its own dataset
    with pytest.raises(IndexError):
        both[len(both)]
    # the second part has no tracks: no item carries them, so a batch can mix the parts
    assert not both.has_tracks and both.has_actions
    assert "tracks" in a[0] and not {"tracks", "future_tracks", "visible"} & set(both[0])
    from care.training.batching import collate_clips

    batch = next(iter(DataLoader(both, batch_size=len(both), collate_fn=collate_clips)))
    assert batch["obs"].shape[0] == len(both)
    assert both.instructions() == list(dict.fromkeys(a.instructions() + b.instructions()))
    tracked = ConcatClips([a, ClipDataset(make_dataset(episodes=2, T=10, size=32), frame_interval=4)])
    assert tracked.has_tracks and "future_tracks" in tracked[len(tracked) - 1]  # all parts tracked: kept


def test_concat_clips_refuse_mixed_frame_sizes_and_a_repeated_dataset(root, make_dataset):
    small = make_dataset(episodes=2, T=10, size=24)
    a = ClipDataset(root, frame_interval=2)
    with pytest.raises(DatasetError, match="different sizes.*--clip.image_size") as e:
        ConcatClips([a, ClipDataset(small, frame_interval=2)])
    assert str(small) in str(e.value)
    same = ConcatClips([a, ClipDataset(small, frame_interval=2, clip=ClipConfig(image_size=32))])
    assert same[len(a)]["obs"].shape == (3, 32, 32)  # served at one size
    with pytest.raises(DatasetError, match="listed twice"):
        ConcatClips([a, ClipDataset(root, frame_interval=2)])


def test_asking_more_episodes_than_exist_is_one_sentence(make_dataset, monkeypatch):
    """Two tasks short of episodes: one warning naming both, printed by the CLI as one line
    (`care finetune: warning: ...`), not Python's file:line form with the source line."""
    import warnings

    from care.cli import _one_line_warnings
    from care.data.clips import select_episodes_per_task

    ds = make_dataset(episodes=4, T=8, size=16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chosen = select_episodes_per_task(ds, 5)
    assert chosen == [0, 1, 2, 3] and len(caught) == 1
    w = caught[0]
    assert str(w.message) == ("5 episodes per task asked, only 2 of drawer-close-v3, 2 of button-press-topdown-v3 "
                              "available: using all of them")
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)
    _one_line_warnings("finetune")
    text = warnings.formatwarning(w.message, w.category, w.filename, w.lineno)
    assert text == f"care finetune: warning: {w.message}\n"
    other = warnings.formatwarning("x", UserWarning, "/site-packages/torch/a.py", 3)
    assert other.startswith("/site-packages/torch/a.py:3: UserWarning: x")

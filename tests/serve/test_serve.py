"""`care serve` + PolicyClient on localhost: exact round trip, bad inputs, sessions, disconnects."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

from care.policy import CarePolicy, save_policy  # noqa: E402
from care.models.vla import merge_lora  # noqa: E402
from care.serve import PolicyClient, ServerError  # noqa: E402
from care.serve.protocol import ProtocolError, pack, unpack  # noqa: E402
from care.serve.server import PolicyServer  # noqa: E402
from helpers import META, images, micro_model, normalizer  # noqa: E402


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("served")
    save_policy(out, merge_lora(micro_model(chunk_size=3)), normalizer(), META)  # 48x48 frames
    return out


@pytest.fixture
def server(policy_dir):
    srv = PolicyServer(CarePolicy.from_pretrained(policy_dir), port=0, max_message_mb=0.5).start_in_thread()
    yield srv
    srv.stop()


def test_protocol_round_trip_is_exact_and_refuses_lies():
    a = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    back = unpack(pack({"type": "x", "a": a, "img": np.zeros((2, 2, 3), np.uint8)}))
    assert back["a"].dtype == np.float32 and np.array_equal(back["a"], a) and back["img"].shape == (2, 2, 3)
    bad = pack({"type": "x", "a": {"__ndarray__": True, "dtype": "float32", "shape": [3, 4], "data": b"12"}})
    with pytest.raises(ProtocolError, match="needs 48 bytes, got 2"):
        unpack(bad)
    with pytest.raises(ProtocolError, match="dtype 'object'"):
        unpack(pack({"type": "x", "a": {"__ndarray__": True, "dtype": "object", "shape": [1], "data": b"1"}}))
    with pytest.raises(ProtocolError, match="not a msgpack message"):
        unpack(b"\xc1\x00garbage")
    with pytest.raises(ProtocolError, match="string \"type\""):
        unpack(pack([1, 2]))


def test_served_actions_equal_the_in_process_policy(server, policy_dir):
    local = CarePolicy.from_pretrained(policy_dir)
    imgs = images(7, size=48, seed=3)
    with PolicyClient("127.0.0.1", server.port) as client:
        assert client.info["frame_hw"] == [48, 48] and client.info["chunk_size"] == 3
        client.reset()
        local.reset()
        for img in imgs:  # 7 steps: crosses two re-plans of the 3-step chunk
            served = client.select_action(img, "close the drawer")
            np.testing.assert_array_equal(served, local.select_action(img, "close the drawer"))
        chunk = client.predict_chunk(imgs[0], "close the drawer")
        np.testing.assert_array_equal(chunk, local.predict_chunk(imgs[:1], ["close the drawer"])[0])


def test_bad_inputs_get_an_error_and_the_session_goes_on(server):
    img = images(1, size=48)[0]
    with PolicyClient("127.0.0.1", server.port) as client:
        with pytest.raises(ServerError, match="dtype must be uint8"):
            client.select_action(img.astype(np.float32), "close the drawer")
        with pytest.raises(ServerError, match=r"32x32 \(W x H\); this policy was trained on 48x48"):
            client.select_action(img[:32, :32], "close the drawer")
        with pytest.raises(ServerError, match=r"must be \(H, W, 3\)"):
            client.select_action(img[..., 0], "close the drawer")
        with pytest.raises(ServerError, match="non-empty \"instruction\""):
            client.select_action(img, "")
        with pytest.raises(ServerError, match="unknown message type 'fly'"):
            client._call({"type": "fly"})
        client._ws.send(b"\xc1garbage")  # not msgpack
        assert unpack(client._ws.recv(timeout=10))["type"] == "error"
        assert client.select_action(img, "close the drawer").shape == (4,)  # still served


def test_an_oversized_message_closes_only_that_connection(server):
    from websockets.exceptions import ConnectionClosed

    img = images(1, size=48)[0]
    with PolicyClient("127.0.0.1", server.port) as good, PolicyClient("127.0.0.1", server.port) as greedy:
        greedy._ws.send(pack({"type": "act", "image": np.zeros((600, 600, 3), np.uint8), "instruction": "x"}))
        with pytest.raises(ConnectionClosed) as e:
            greedy._ws.recv(timeout=10)
        assert e.value.rcvd is not None and e.value.rcvd.code == 1009  # "message too big"
        assert good.select_action(img, "close the drawer").shape == (4,)


def test_sessions_keep_their_own_queues_and_a_disconnect_leaves_nothing(server, policy_dir):
    imgs_a, imgs_b = images(5, size=48, seed=1), images(5, size=48, seed=2)
    local_a, local_b = CarePolicy.from_pretrained(policy_dir), CarePolicy.from_pretrained(policy_dir)
    with PolicyClient("127.0.0.1", server.port) as a, PolicyClient("127.0.0.1", server.port) as b:
        for ia, ib in zip(imgs_a, imgs_b):  # interleaved: each keeps its own chunk queue
            np.testing.assert_array_equal(a.select_action(ia, "close the drawer"),
                                          local_a.select_action(ia, "close the drawer"))
            np.testing.assert_array_equal(b.select_action(ib, "open the window"),
                                          local_b.select_action(ib, "open the window"))
        assert len(server.sessions) == 2
        c = PolicyClient("127.0.0.1", server.port)
        c.select_action(imgs_a[0], "close the drawer")  # mid-chunk (1 of 3 used) ...
        c._ws.close()  # ... and gone
        for _ in range(100):
            if len(server.sessions) == 2:
                break
            time.sleep(0.05)
        assert len(server.sessions) == 2


def test_care_serve_binds_localhost_by_default():
    from care.configs import ServeConfig

    assert ServeConfig().host == "127.0.0.1"
    with pytest.raises(ValueError, match="port"):
        ServeConfig(port=70000)


def test_the_client_needs_no_torch():
    import subprocess

    code = "import sys, care.serve; assert 'torch' not in sys.modules, 'torch was imported'; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_a_wrist_camera_policy_is_served(tmp_path):
    """A policy that reads a wrist camera: the client sends both frames and gets what the
    in-process policy gives; a request without the wrist frame gets an error naming it."""
    import dataclasses

    from care.configs import ClipConfig, FinetuneConfig, LoRAConfig
    from care.training.finetune import build_policy_model

    model = micro_model(chunk_size=3, lora=False)
    cfg = dataclasses.replace(FinetuneConfig(pretrained=None), clip=ClipConfig(wrist_camera="wrist_image"),
                              head=model.head.config, lora=LoRAConfig(enabled=False))
    wrist_model = build_policy_model(cfg, model.vlm, action_dim=4)
    assert wrist_model.has_wrist
    save_policy(tmp_path, merge_lora(wrist_model).eval(), normalizer(), {**META, "wrist_camera": "wrist_image"})
    local = CarePolicy.from_pretrained(tmp_path)
    srv = PolicyServer(CarePolicy.from_pretrained(tmp_path), port=0).start_in_thread()
    try:
        imgs, wrists = images(2, size=48, seed=1), images(2, size=48, seed=2)
        with PolicyClient("127.0.0.1", srv.port) as client:
            assert client.info["wrist_camera"] == "wrist_image"
            served = client.predict_chunk(imgs[0], "close the drawer", wrist=wrists[0])
            np.testing.assert_array_equal(served, local.predict_chunk(imgs[:1], ["close the drawer"], wrist=wrists[:1])[0])
            with pytest.raises(ServerError, match="wrist"):
                client.select_action(imgs[1], "close the drawer")
            assert client.select_action(imgs[1], "close the drawer", wrist=wrists[1]).shape == (4,)
    finally:
        srv.stop()


@pytest.mark.parametrize("hw", [(32, 32), (64, 64), (200, 300), (48, 64)])
def test_policy_and_server_refuse_the_same_frame_sizes(server, policy_dir, hw):
    """`CarePolicy.select_action` (and `predict_chunk`) and `care serve` agree: a frame of another
    size or aspect than the policy was trained on (48x48 here) is an error naming the expected
    size, never silently resized."""
    local = CarePolicy.from_pretrained(policy_dir)
    assert local.frame_hw == (48, 48)
    frame = np.zeros((*hw, 3), np.uint8)
    expected = rf"{hw[1]}x{hw[0]} \(W x H\); this policy was trained on 48x48"
    with pytest.raises(ValueError, match=expected):
        local.select_action(frame, "close the drawer")
    with pytest.raises(ValueError, match=expected):
        local.predict_chunk(frame[None], ["close the drawer"])
    with PolicyClient("127.0.0.1", server.port) as client:
        with pytest.raises(ServerError, match=expected):
            client.select_action(frame, "close the drawer")
    assert local.select_action(np.zeros((48, 48, 3), np.uint8), "close the drawer").shape == (4,)

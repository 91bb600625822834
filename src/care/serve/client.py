"""PolicyClient: what a robot script imports to query `care serve` (no torch needed)."""

from __future__ import annotations

import numpy as np

from care.serve.protocol import pack, unpack


class ServerError(RuntimeError):
    """The server refused a request; the message says why (wrong shape, dtype, ...)."""


class PolicyClient:
    """One session on a `care serve` server, with CarePolicy's interface.

    Args:
        host, port: the server (`care serve` binds 127.0.0.1:8000 by default).
        timeout: seconds to wait for a connection and for each reply.
        max_message_mb: the largest reply accepted.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8000, timeout: float = 30.0, max_message_mb: float = 16):
        from websockets.sync.client import connect

        self.url = f"ws://{host}:{port}"
        self.timeout = timeout
        self._ws = connect(self.url, open_timeout=timeout, max_size=int(max_message_mb * 2**20))
        self.info = self._call({"type": "info"})  # image size, action dim, chunk size, state dims, camera

    def _call(self, message: dict) -> dict:
        self._ws.send(pack(message))
        reply = unpack(self._ws.recv(timeout=self.timeout))
        if reply["type"] == "error":
            raise ServerError(f"{self.url}: {reply.get('message')}")
        return reply

    def reset(self) -> None:
        """Forget the session's queued actions: call at the start of every episode."""
        self._call({"type": "reset"})

    def _act(self, image, instruction, state, wrist, chunk: bool) -> dict:
        return self._call({"type": "act", "image": np.asarray(image), "instruction": instruction,
                           "state": None if state is None else np.asarray(state, np.float32),
                           "wrist": None if wrist is None else np.asarray(wrist), "chunk": chunk})

    def select_action(self, image: np.ndarray, instruction: str, state: np.ndarray | None = None,
                      wrist: np.ndarray | None = None) -> np.ndarray:
        """(H, W, 3) uint8 frame (+ the full state, + the wrist frame, when the policy reads
        them) -> the action (A,)."""
        return self._act(image, instruction, state, wrist, chunk=False)["action"]

    def predict_chunk(self, image: np.ndarray, instruction: str, state: np.ndarray | None = None,
                      wrist: np.ndarray | None = None) -> np.ndarray:
        """The whole predicted chunk (H, A), without touching the session's queue."""
        return self._act(image, instruction, state, wrist, chunk=True)["actions"]

    def close(self) -> None:
        self._ws.close()

    def __enter__(self) -> "PolicyClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

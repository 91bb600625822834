"""`care serve`: a fine-tuned policy behind a websocket, one session per client.

    care serve --policy runs/care_tiny_ft --port 8000 [--host 0.0.0.0] [--execution ensemble]

The network is loaded once and shared; every connection gets its own chunk queue (reset by
{"type": "reset"}), so many robots, or many simulated episodes, run against one server. The
forward passes run one at a time on a worker thread, so the event loop keeps answering
everyone (including errors) while a chunk is computed. A request with the wrong shape, dtype
or frame size gets an error reply and the session goes on; a message over `max_message_mb`
closes that connection (code 1009) and nobody else's; a client that disconnects leaves
nothing behind. Binds 127.0.0.1 unless told otherwise: the protocol has no authentication.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from care.configs import ServeConfig
from care.policy.chunking import ChunkExecutor
from care.serve.protocol import ProtocolError, pack, unpack


@dataclass
class Session:
    """One client's state: its chunk queue."""

    executor: ChunkExecutor
    requests: int = 0
    peer: str = ""


class PolicyServer:
    """Serve `policy` (a care.policy.CarePolicy) on ws://host:port (see module docstring)."""

    def __init__(self, policy, host: str = "127.0.0.1", port: int = 8000, max_message_mb: float = 16):
        self.policy = policy
        self.host, self.port = host, port
        self.max_size = int(max_message_mb * 2**20)
        self.sessions: set[int] = set()
        self._forward = ThreadPoolExecutor(max_workers=1, thread_name_prefix="care-serve-forward")
        self._server = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.frame_hw = policy.frame_hw  # the one rule: CarePolicy.select_action checks the same size

    # --- what a client may ask ---
    def info(self) -> dict:
        p = self.policy
        return {"type": "info", "frame_hw": list(self.frame_hw), "image_size": p.image_size,
                "action_dim": p.action_dim, "chunk_size": p.chunk_size, "state_dim": p.state_dim,
                "state_indices": p.state_indices, "state_names": p.meta.get("state_names"),
                "camera": p.camera, "wrist_camera": p.wrist_camera, "execution": p.executor.mode}

    def _check_image(self, image, key: str, camera) -> None:
        if not isinstance(image, np.ndarray):
            raise ProtocolError(f"\"act\" needs an \"{key}\" array (H, W, 3) uint8")
        if image.dtype != np.uint8:
            raise ProtocolError(f"{key} dtype must be uint8 (0-255), got {image.dtype}")
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ProtocolError(f"{key} must be (H, W, 3), got shape {list(image.shape)}")
        if tuple(image.shape[:2]) != self.frame_hw:
            raise ProtocolError(f"{key} is {image.shape[1]}x{image.shape[0]} (W x H); this policy was trained on "
                                f"{self.frame_hw[1]}x{self.frame_hw[0]} frames of camera {camera!r}")

    def _check_act(self, msg: dict) -> tuple[np.ndarray, str, np.ndarray | None, np.ndarray | None]:
        image, instruction, state, wrist = msg.get("image"), msg.get("instruction"), msg.get("state"), msg.get("wrist")
        self._check_image(image, "image", self.policy.camera)
        if self.policy.wrist_camera:
            self._check_image(wrist, "wrist", self.policy.wrist_camera)
        elif wrist is not None:
            raise ProtocolError("this policy reads one camera: send no \"wrist\" image")
        if not isinstance(instruction, str) or not instruction.strip():
            raise ProtocolError("\"act\" needs a non-empty \"instruction\" string")
        if self.policy.state_dim and state is None:
            raise ProtocolError(f"this policy reads a state: send \"state\" (the full recorded vector; "
                                f"it uses dims {self.policy.state_indices})")
        if state is not None:
            if not isinstance(state, np.ndarray) or state.ndim != 1 or state.dtype.kind != "f":
                raise ProtocolError("\"state\" must be a 1-d float array")
            if not np.all(np.isfinite(state)):
                raise ProtocolError("\"state\" contains NaN or inf")
        return image, instruction, state, wrist

    async def _act(self, session: Session, msg: dict) -> dict:
        image, instruction, state, wrist = self._check_act(msg)
        loop = asyncio.get_running_loop()

        def plan() -> np.ndarray:  # on the forward thread: one network call at a time
            return self.policy.predict_chunk(image[None], [instruction], None if state is None else state[None],
                                             None if wrist is None else wrist[None])

        if msg.get("chunk"):
            chunk = await loop.run_in_executor(self._forward, plan)
            return {"type": "chunk", "actions": chunk[0]}
        if session.executor.needs_plan():
            session.executor.add_chunk(await loop.run_in_executor(self._forward, plan))
        return {"type": "action", "action": session.executor.next_action()[0]}

    async def _handle(self, session: Session, payload) -> dict:
        msg = unpack(payload)
        kind = msg["type"]
        if kind == "act":
            return await self._act(session, msg)
        if kind == "reset":
            session.executor.reset()
            return {"type": "ok"}
        if kind == "info":
            return self.info()
        raise ProtocolError(f"unknown message type {kind!r} (act | reset | info)")

    async def _connection(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed

        p = self.policy
        session = Session(ChunkExecutor(p.chunk_size, p.executor.mode, p.executor.decay, p.executor.n_action_steps),
                          peer=str(getattr(ws, "remote_address", "")))
        self.sessions.add(id(session))
        try:
            async for payload in ws:
                session.requests += 1
                try:
                    reply = await self._handle(session, payload)
                except (ProtocolError, ValueError) as e:
                    reply = {"type": "error", "message": str(e)}
                await ws.send(pack(reply))
        except ConnectionClosed:
            pass  # a client that goes away mid-chunk leaves nothing behind
        finally:
            self.sessions.discard(id(session))

    # --- running ---
    async def run(self, started: threading.Event | None = None) -> None:
        from websockets.asyncio.server import serve

        async with serve(self._connection, self.host, self.port, max_size=self.max_size) as server:
            self._server = server
            self.port = server.sockets[0].getsockname()[1]  # port 0: the OS's choice
            self._loop = asyncio.get_running_loop()
            if started is not None:
                started.set()
            await server.serve_forever()

    def start_in_thread(self) -> "PolicyServer":
        """Serve from a background thread (tests, benchmarks, notebooks); returns once listening."""
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run_until_closed()), daemon=True)
        self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError("care serve did not start within 60 s")
        return self

    async def _run_until_closed(self) -> None:
        try:
            await self.run(self._ready)
        except asyncio.CancelledError:
            pass

    def stop(self) -> None:
        if self._server is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._forward.shutdown(wait=False)


def serve(cfg: ServeConfig) -> int:
    from care.policy import CarePolicy

    policy = CarePolicy.from_pretrained(cfg.policy, execution=cfg.execution, n_action_steps=cfg.n_action_steps,
                                        ensemble_decay=cfg.ensemble_decay, device=cfg.device,
                                        precision=cfg.precision)
    server = PolicyServer(policy, cfg.host, cfg.port, cfg.max_message_mb)
    if cfg.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"care serve: warning: listening on {cfg.host}; the protocol has no authentication")

    async def main() -> None:
        started = threading.Event()
        task = asyncio.create_task(server.run(started))
        while not started.is_set():
            await asyncio.sleep(0.05)
        info = server.info()
        print(f"care serve: {cfg.policy} on ws://{cfg.host}:{server.port} — frames {info['frame_hw'][1]}x"
              f"{info['frame_hw'][0]} ({info['camera']}), action dim {info['action_dim']}, chunk {info['chunk_size']}"
              f"{', state dims ' + str(info['state_names'] or info['state_indices']) if info['state_dim'] else ''}. "
              "Ctrl-C stops it.", flush=True)
        await task

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("care serve: stopped")
    return 0

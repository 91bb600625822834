"""Serving a fine-tuned policy to robot clients over a websocket: `care serve` and PolicyClient.

    care serve --policy runs/care_tiny_ft --port 8000          # binds 127.0.0.1 (--host to open it)

    from care.serve import PolicyClient                        # in the robot's script
    client = PolicyClient("127.0.0.1", 8000)
    client.reset()                                             # at the start of every episode
    action = client.select_action(image, "close the drawer")   # (H, W, 3) uint8 -> (A,)

Messages are msgpack maps with numpy arrays as {dtype, shape, bytes} (protocol.py), never
pickle. Each connection is a session with its own chunk queue; the network is shared.
Importing this package loads no torch: the client runs on a robot computer without it.
"""

from care.serve.client import PolicyClient, ServerError

__all__ = ["PolicyClient", "ServerError"]

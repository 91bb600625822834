"""The wire format of `care serve`: msgpack maps, numpy arrays as typed byte strings.

    request   {"type": "act", "image": ARRAY, "instruction": str, "state": ARRAY | None, "chunk": bool,
               "wrist": ARRAY | None (a policy that reads a wrist camera)}
              {"type": "reset"}   {"type": "info"}
    reply     {"type": "action", "action": ARRAY}   or {"type": "chunk", "actions": ARRAY}
              {"type": "ok"}   {"type": "info", ...}   {"type": "error", "message": str}
    ARRAY     {"__ndarray__": True, "dtype": "uint8", "shape": [H, W, 3], "data": bytes}

Decoding never executes anything (msgpack with raw=False, no ext hooks, an allow-list of
dtypes) and checks that the bytes match the declared shape; a bad message is a ProtocolError
whose text goes back to the client.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

DTYPES = {"uint8", "float32", "float64", "int64", "int32"}  # what a robot sends or receives


class ProtocolError(ValueError):
    """A message that does not follow the protocol (its text is sent back to the client)."""


def _encode_default(obj: Any):
    if isinstance(obj, np.ndarray):
        if obj.dtype.name not in DTYPES:
            raise TypeError(f"arrays of dtype {obj.dtype} are not sent (allowed: {sorted(DTYPES)})")
        arr = np.ascontiguousarray(obj)
        return {"__ndarray__": True, "dtype": arr.dtype.name, "shape": list(arr.shape), "data": arr.tobytes()}
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot send a {type(obj).__name__}")


def _decode_hook(d: dict):
    if d.get("__ndarray__") is not True:
        return d
    dtype, shape, data = d.get("dtype"), d.get("shape"), d.get("data")
    if dtype not in DTYPES:
        raise ProtocolError(f"array dtype {dtype!r} is not accepted (allowed: {sorted(DTYPES)})")
    if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise ProtocolError(f"array shape must be a list of non-negative ints, got {shape!r}")
    if not isinstance(data, bytes | bytearray):
        raise ProtocolError("array data must be bytes")
    expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if len(data) != expected:
        raise ProtocolError(f"array of shape {shape} and dtype {dtype} needs {expected} bytes, got {len(data)}")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def pack(message: dict) -> bytes:
    return msgpack.packb(message, default=_encode_default, use_bin_type=True)


def unpack(payload: bytes) -> dict:
    """bytes -> a message map; ProtocolError for anything else."""
    if not isinstance(payload, bytes | bytearray):
        raise ProtocolError("messages are binary msgpack frames, not text")
    try:
        message = msgpack.unpackb(payload, object_hook=_decode_hook, raw=False, strict_map_key=True)
    except ProtocolError:
        raise
    except Exception as e:  # msgpack's own errors: truncated, extra data, bad types
        raise ProtocolError(f"not a msgpack message ({type(e).__name__}: {e})") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("a message is a map with a string \"type\"")
    return message

"""Read and write safetensors files with numpy (no safetensors package).

The tests use it to hand weights and batches to nader's tools and to read
back what they wrote.  float32 only, as nader writes; other dtypes are
read (F64, I64, I32, U8) for completeness.
"""
import json
import struct

import numpy as np

_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64,
           "I32": np.int32, "U8": np.uint8}


def save(path, tensors, metadata=None):
    """tensors: dict name -> array (stored as float32, C order)."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs, at = [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(np.asarray(a, dtype=np.float32))
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def load(path):
    """Returns (dict name -> array, metadata dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        b, c = e["data_offsets"]
        a = np.frombuffer(data[b:c], dtype=_DTYPES[e["dtype"]])
        out[name] = a.reshape(e["shape"]).copy()
    return out, meta

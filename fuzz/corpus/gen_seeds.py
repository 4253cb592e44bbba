#!/usr/bin/env python3
"""Writes the tiny seed files of the fuzz corpora (fuzz/corpus/safetensors, fuzz/corpus/idx).

Run from anywhere: python3 fuzz/corpus/gen_seeds.py. Deterministic; no third-party modules.
The safetensors seeds follow the format exactly as the reference implementation writes it
(header padded with spaces to a multiple of 8, tensors back to back)."""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def safetensors(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, raw bytes) in data order."""
    header, off = {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(t[3] for t in tensors)


def idx(dims, payload):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


def write(sub, name, blob):
    os.makedirs(os.path.join(HERE, sub), exist_ok=True)
    with open(os.path.join(HERE, sub, name), "wb") as f:
        f.write(blob)


write("safetensors", "hf_example", safetensors([("test", "I32", [2, 2], bytes(16))]))
write("safetensors", "empty", safetensors([]))
write("safetensors", "mixed", safetensors(
    [("w", "F64", [2], struct.pack("<2d", 1.5, -2.0)),
     ("layer.0.weight", "F32", [2, 3], struct.pack("<6f", *range(6))),
     ("h", "BF16", [1, 2], bytes(4)),
     ("flag", "BOOL", [3], bytes([1, 0, 1])),
     ("z", "U8", [0, 4], b"")],
    {"format": "frugal-checkpoint", "note": "tab\t\"q\" \u00e9"}))
write("safetensors", "escaped_name", safetensors([("a\"b\\c\u00e9\U0001F600", "I8", [], b"\x7f")]))
write("idx", "labels", idx([5], bytes([0, 1, 2, 9, 4])))
write("idx", "images", idx([2, 3, 3], bytes(range(18))))
write("idx", "empty", idx([0, 28, 28], b""))

#!/usr/bin/env python3
"""Writes the tiny seed files of the fuzz corpora (fuzz/corpus/safetensors, fuzz/corpus/idx,
fuzz/corpus/corpus, fuzz/corpus/vit_table, fuzz/corpus/lm_ckpt).

Run from anywhere: python3 fuzz/corpus/gen_seeds.py. Deterministic; no third-party modules.
The safetensors seeds follow the format exactly as the reference implementation writes it
(header padded with spaces to a multiple of 8, tensors back to back). The text corpus seeds are
train, valid and test texts joined by 0xFF bytes, the way fuzz/fuzz_corpus.c cuts its input."""
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


def corpus(train, valid, test):
    return b"\xff".join([train, valid, test])


write("corpus", "basic", corpus(b"the cat sat\nthe dog\n", b"the cat\n", b"dog sat the\n"))
write("corpus", "ptb_like", corpus(
    b" aer banknote berlitz <unk> \n pierre <unk> N years old will join the board \n",
    b" the board will join N <unk> \n", b" pierre years old \n"))
write("corpus", "crlf_blank", corpus(b"\r\n  a\tb  \r\n\n \t \r\n\tcaf\xc3\xa9 a\r\nb", b"", b"\n\n"))
write("corpus", "oov", corpus(b"a b\n", b"a\n\nb c\n", b""))
write("corpus", "control", corpus(b"ab\ncd\x00e\n", b"a\x7f", b"b\x0b"))
write("corpus", "long_word", corpus(b"a " + b"y" * 256 + b"\n", b"a\n", b"y" * 257))
write("corpus", "eos_literal", corpus(b"<eos> x <eos>\n", b"<eos>", b"x"))


def vit_table(configs, front):
    """A profile as `frugal vit profile --json` writes it (the fields fg_vit_table_parse reads and
    some it ignores)."""
    return json.dumps({"model": "vit-tiny-28", "data": "fashion", "metric": "accuracy", "search": "greedy",
                       "val_items": 1000, "batch": 50, "knobs": 12, "configurations": configs,
                       "pareto": front}, indent=2).encode()


ALL_ON = {"skip": "all-on", "flops": 4951000, "seconds": 0.00076, "metric": 0.901}
write("vit_table", "small", vit_table(
    [dict(ALL_ON, greedy_path=1, pareto=1),
     {"skip": "mlp3", "flops": 4382000, "seconds": 7e-4, "metric": 0.89, "greedy_path": 1, "pareto": 1},
     {"skip": "attn0,heads1=2", "flops": 4.6e6, "seconds": 9e-4, "metric": 0.7, "greedy_path": 0, "pareto": 0}],
    [ALL_ON, {"skip": "mlp3", "flops": 4382000, "seconds": 7e-4, "metric": 0.89}]))
write("vit_table", "segformer", vit_table(
    [{"skip": "srpool0,dwconv2,decoder3", "flops": 1.9e8, "seconds": 0.01, "metric": 0.2, "pareto": 1}],
    [{"skip": "srpool0,dwconv2,decoder3", "flops": 1.9e8, "seconds": 0.01, "metric": 0.2}]))
write("vit_table", "skip_text", b"attn1,mlp2,heads0=2,decoder3")


def lm_ckpt(history, epochs=None, tensors=None, **over):
    """The metadata of a `frugal lm train --checkpoint` file (one small tensor unless tensors are
    given: the checkpoint reader looks at the metadata only, fg_lm_cfg_from_weights at the tensors'
    shapes). history: per epoch 8 numbers, written as C99 hex floats like the trainer."""
    meta = {"kind": "lm-checkpoint", "lm.epochs": str(epochs if epochs is not None else len(history)),
            "lm.seed": "1", "lm.steps": "35", "lm.batch": "20", "lm.chunks": "1224",
            "lm.train_seconds": (1234.5).hex(), "lm.train_cpu_seconds": (1200.25).hex(),
            "lm.history": ";".join(",".join(float(x).hex() for x in ep) for ep in history)}
    meta.update(over)
    return safetensors(tensors or [("decoder.bias", "F32", [2], struct.pack("<2f", 0, 0))], meta)


EP1 = [0.0, 1.0, 500.5, 464.5, 560.0, 540.0, 200.0, 1.0]
EP2 = [0.8, 0.5, 300.0, 290.0, 450.0, 430.0, 70.0, 0.2]
write("lm_ckpt", "two_epochs", lm_ckpt([EP1, EP2]))
write("lm_ckpt", "one_epoch_decimal", lm_ckpt([EP1], **{"lm.history": "0,1,500.5,464.5,560,540,200,1"}))
write("lm_ckpt", "short_history", lm_ckpt([EP1], epochs=2))
write("lm_ckpt", "weights_kind", lm_ckpt([EP1], kind="weights"))


def f32(*shape):
    n = 1
    for d in shape:
        n *= d
    return bytes(4 * n)


# a whole 2-layer model's tensors (vocabulary 5, embedding 2, 3 units): every shape the size reader checks
LM = [("embed.weight", "F32", [5, 2], f32(5, 2))]
for k, inp in ((0, 2), (1, 3)):
    LM += [(f"lstm{k}.weight_ih_l0", "F32", [12, inp], f32(12, inp)), (f"lstm{k}.weight_hh_l0", "F32", [12, 3], f32(12, 3)),
           (f"lstm{k}.bias_ih_l0", "F32", [12], f32(12)), (f"lstm{k}.bias_hh_l0", "F32", [12], f32(12))]
LM += [("decoder.weight", "F32", [5, 3], f32(5, 3)), ("decoder.bias", "F32", [5], f32(5))]
write("lm_ckpt", "model_2x3", lm_ckpt([EP1], tensors=LM))

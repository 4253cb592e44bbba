"""PyTorch peer of bench/vit_latency: dense inference of SegFormer (MiT-B0..B2 encoder, all-MLP
decoder) and a DeiT-style ViT classifier in PyTorch 1.13 eager mode, as nn.Modules laid out like
Hugging Face's SegformerForSemanticSegmentation and ViTForImageClassification, so that their
state_dict names are HF's (transformers is not installed here; the architecture is written from the
papers and the public modeling code, as tests/fixtures/gen_segformer.py and gen_vit.py).

The weights are the ones frugal wrote (a safetensors file read by the small reader below, loaded
with load_state_dict(strict=True)); the input and frugal's logits come from a second safetensors
file. Before timing, the peer's logits for that input are compared with frugal's: the largest
absolute difference over the largest |logit| must be at most 1e-4, else the peer exits 1 without
timing (the two would not be running the same model).

Prints one line (wall-clock median and minimum; the median of the process CPU time per forward,
all threads, which a loaded machine disturbs less):
  peer model=<name> batch=<b> rel_err=<float> ms_median=<float> ms_min=<float> reps=<n> cpu_ms_median=<float>
Run by bench/vit_latency (which sets OPENBLAS_CORETYPE and the thread count); usable alone:
  /usr/bin/python3 bench/peer_vit.py --model segformer-b0 --weights W.safetensors --io IO.safetensors
"""
import argparse
import json
import math
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SEGFORMER = {
    "segformer-b0": dict(hidden=[32, 64, 160, 256], depths=[2, 2, 2, 2], decoder=256),
    "segformer-b1": dict(hidden=[64, 128, 320, 512], depths=[2, 2, 2, 2], decoder=256),
    "segformer-b2": dict(hidden=[64, 128, 320, 512], depths=[3, 4, 6, 3], decoder=768),
}
SEG_COMMON = dict(heads=[1, 2, 5, 8], sr=[8, 4, 2, 1], patch=[7, 3, 3, 3], stride=[4, 2, 2, 2], mlp_ratio=4)
VIT = {  # patch, dim, depth, heads, mlp
    "vit-tiny-28": (7, 64, 4, 4, 128),
    "deit-tiny": (16, 192, 12, 3, 768),
    "deit-small": (16, 384, 12, 6, 1536),
}


def read_safetensors(path):
    """{name: float32 tensor} and the metadata of a safetensors file (F32 and I64 entries)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        dt = {"F32": np.float32, "I64": np.int64}.get(e["dtype"])
        if dt is None:
            sys.exit(f"peer_vit: {path}: tensor '{name}' has dtype {e['dtype']}, expected F32 or I64")
        arr = np.frombuffer(raw, dtype=dt, count=(b - a) // np.dtype(dt).itemsize, offset=base + a)
        out[name] = torch.from_numpy(arr.reshape(e["shape"]).copy())
    return out, header.get("__metadata__", {})


# ------------------------------------------------------------------ SegFormer (HF module layout)

class SegAttention(nn.Module):
    """attention.self (query, key, value, sr, layer_norm) and attention.output.dense."""

    def __init__(self, c, heads, sr):
        super().__init__()
        self.self = nn.Module()
        self.self.query, self.self.key, self.self.value = nn.Linear(c, c), nn.Linear(c, c), nn.Linear(c, c)
        if sr > 1:
            self.self.sr = nn.Conv2d(c, c, sr, stride=sr)
            self.self.layer_norm = nn.LayerNorm(c, eps=1e-5)
        self.output = nn.Module()
        self.output.dense = nn.Linear(c, c)
        self.heads, self.sr_ratio = heads, sr

    def forward(self, x, h, w):
        B, N, C = x.shape
        H, D = self.heads, C // self.heads
        s = self.self
        q = s.query(x).view(B, N, H, D).permute(0, 2, 1, 3)
        kv = x
        if self.sr_ratio > 1:
            img = x.permute(0, 2, 1).reshape(B, C, h, w)
            kv = s.layer_norm(s.sr(img).reshape(B, C, -1).permute(0, 2, 1))
        k = s.key(kv).view(B, -1, H, D).permute(0, 2, 1, 3)
        v = s.value(kv).view(B, -1, H, D).permute(0, 2, 1, 3)
        p = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(D), dim=-1)
        a = torch.matmul(p, v).permute(0, 2, 1, 3).reshape(B, N, C)
        return self.output.dense(a)


class MixFFN(nn.Module):
    def __init__(self, c, m):
        super().__init__()
        self.dense1 = nn.Linear(c, m)
        self.dwconv = nn.Module()
        self.dwconv.dwconv = nn.Conv2d(m, m, 3, padding=1, groups=m)
        self.act = nn.GELU()
        self.dense2 = nn.Linear(m, c)

    def forward(self, x, h, w):
        y = self.dense1(x)
        B, N, M = y.shape
        y = self.dwconv.dwconv(y.transpose(1, 2).view(B, M, h, w)).flatten(2).transpose(1, 2)
        return self.dense2(self.act(y))


class SegBlock(nn.Module):
    def __init__(self, c, heads, sr, m):
        super().__init__()
        self.layer_norm_1 = nn.LayerNorm(c, eps=1e-5)
        self.attention = SegAttention(c, heads, sr)
        self.layer_norm_2 = nn.LayerNorm(c, eps=1e-5)
        self.mlp = MixFFN(c, m)

    def forward(self, x, h, w):
        x = x + self.attention(self.layer_norm_1(x), h, w)
        return x + self.mlp(self.layer_norm_2(x), h, w)


class PatchEmbed(nn.Module):
    def __init__(self, cin, c, k, s):
        super().__init__()
        self.proj = nn.Conv2d(cin, c, k, stride=s, padding=k // 2)
        self.layer_norm = nn.LayerNorm(c, eps=1e-5)

    def forward(self, x):
        e = self.proj(x)
        return self.layer_norm(e.flatten(2).transpose(1, 2)), e.shape[2], e.shape[3]


class DecoderMLP(nn.Module):
    def __init__(self, cin, e):
        super().__init__()
        self.proj = nn.Linear(cin, e)

    def forward(self, x):
        return self.proj(x.flatten(2).transpose(1, 2))


class SegFormer(nn.Module):
    def __init__(self, cfg, labels, channels=3):
        super().__init__()
        hid, dec = cfg["hidden"], cfg["decoder"]
        self.segformer = nn.Module()
        enc = self.segformer.encoder = nn.Module()
        enc.patch_embeddings = nn.ModuleList(
            PatchEmbed(channels if i == 0 else hid[i - 1], hid[i], cfg["patch"][i], cfg["stride"][i]) for i in range(4))
        enc.block = nn.ModuleList(
            nn.ModuleList(SegBlock(hid[i], cfg["heads"][i], cfg["sr"][i], hid[i] * cfg["mlp_ratio"])
                          for _ in range(cfg["depths"][i])) for i in range(4))
        enc.layer_norm = nn.ModuleList(nn.LayerNorm(hid[i], eps=1e-5) for i in range(4))
        self.decode_head = nn.Module()
        dh = self.decode_head
        dh.linear_c = nn.ModuleList(DecoderMLP(hid[i], dec) for i in range(4))
        dh.linear_fuse = nn.Conv2d(4 * dec, dec, 1, bias=False)
        dh.batch_norm = nn.BatchNorm2d(dec, eps=1e-5)
        dh.activation = nn.ReLU()
        dh.dropout = nn.Dropout(0.1)
        dh.classifier = nn.Conv2d(dec, labels, 1)

    def forward(self, x):
        enc, dh = self.segformer.encoder, self.decode_head
        feats, t = [], x
        for i in range(4):
            z, h, w = enc.patch_embeddings[i](t)
            for blk in enc.block[i]:
                z = blk(z, h, w)
            z = enc.layer_norm[i](z)
            t = z.reshape(z.shape[0], h, w, -1).permute(0, 3, 1, 2).contiguous()
            feats.append(t)
        H0, W0 = feats[0].shape[2:]
        ups = []
        for i, f in enumerate(feats):
            d = dh.linear_c[i](f)
            d = d.permute(0, 2, 1).reshape(f.shape[0], -1, f.shape[2], f.shape[3])
            ups.append(F.interpolate(d, size=(H0, W0), mode="bilinear", align_corners=False))
        y = dh.activation(dh.batch_norm(dh.linear_fuse(torch.cat(ups[::-1], dim=1))))
        return dh.classifier(dh.dropout(y))


# ------------------------------------------------------------------ ViT (HF module layout)

class ViTLayer(nn.Module):
    def __init__(self, d, heads, mlp, eps):
        super().__init__()
        self.layernorm_before = nn.LayerNorm(d, eps=eps)
        self.attention = nn.Module()
        att = self.attention.attention = nn.Module()
        att.query, att.key, att.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.attention.output = nn.Module()
        self.attention.output.dense = nn.Linear(d, d)
        self.layernorm_after = nn.LayerNorm(d, eps=eps)
        self.intermediate = nn.Module()
        self.intermediate.dense = nn.Linear(d, mlp)
        self.output = nn.Module()
        self.output.dense = nn.Linear(mlp, d)
        self.heads = heads

    def forward(self, x):
        B, T, C = x.shape
        H, D = self.heads, C // self.heads
        a = self.layernorm_before(x)
        att = self.attention.attention
        q = att.query(a).view(B, T, H, D).permute(0, 2, 1, 3)
        k = att.key(a).view(B, T, H, D).permute(0, 2, 1, 3)
        v = att.value(a).view(B, T, H, D).permute(0, 2, 1, 3)
        p = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(D), dim=-1)
        c = torch.matmul(p, v).permute(0, 2, 1, 3).reshape(B, T, C)
        x = x + self.attention.output.dense(c)
        m = F.gelu(self.intermediate.dense(self.layernorm_after(x)))
        return x + self.output.dense(m)


class ViT(nn.Module):
    def __init__(self, preset, classes, channels, size):
        super().__init__()
        patch, d, depth, heads, mlp = VIT[preset]
        n = (size // patch) ** 2
        self.vit = nn.Module()
        emb = self.vit.embeddings = nn.Module()
        emb.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        emb.position_embeddings = nn.Parameter(torch.zeros(1, n + 1, d))
        emb.patch_embeddings = nn.Module()
        emb.patch_embeddings.projection = nn.Conv2d(channels, d, patch, stride=patch)
        self.vit.encoder = nn.Module()
        self.vit.encoder.layer = nn.ModuleList(ViTLayer(d, heads, mlp, 1e-12) for _ in range(depth))
        self.vit.layernorm = nn.LayerNorm(d, eps=1e-12)
        self.classifier = nn.Linear(d, classes)

    def forward(self, x):
        emb = self.vit.embeddings
        p = emb.patch_embeddings.projection(x).flatten(2).transpose(1, 2)
        h = torch.cat([emb.cls_token.expand(x.shape[0], -1, -1), p], dim=1) + emb.position_embeddings
        for layer in self.vit.encoder.layer:
            h = layer(h)
        return self.classifier(self.vit.layernorm(h)[:, 0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, choices=sorted(list(SEGFORMER) + list(VIT)))
    ap.add_argument("--weights", required=True)
    ap.add_argument("--io", required=True, help="safetensors with pixel_values and frugal's logits")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    W, _ = read_safetensors(a.weights)
    io, _ = read_safetensors(a.io)
    x, ours = io["pixel_values"], io["logits"]
    if a.model in SEGFORMER:
        labels = W["decode_head.classifier.weight"].shape[0]
        net = SegFormer(dict(SEG_COMMON, **SEGFORMER[a.model]), labels, x.shape[1])
    else:
        net = ViT(a.model, W["classifier.weight"].shape[0], x.shape[1], x.shape[2])
    sd = net.state_dict()
    for k in sd:  # HF checkpoints carry it; frugal's files need not
        if k.endswith("num_batches_tracked") and k not in W:
            W[k] = sd[k]
    net.load_state_dict(W, strict=True)
    net.eval()
    with torch.inference_mode():
        y = net(x)
        if tuple(y.shape) != tuple(ours.shape):
            sys.exit(f"peer_vit: {a.model}: logits {tuple(y.shape)}, frugal's {tuple(ours.shape)}")
        rel = float((y - ours).abs().max() / ours.abs().max().clamp_min(1e-30))
        if not rel <= a.tol:
            print(f"peer model={a.model} batch={x.shape[0]} rel_err={rel:.3e} MISMATCH (tolerance {a.tol:g})", flush=True)
            sys.exit(1)
        for _ in range(a.warmup):
            net(x)
        times, cpu = [], []
        for _ in range(a.reps):
            c0, t0 = time.process_time(), time.perf_counter()
            net(x)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    print(f"peer model={a.model} batch={x.shape[0]} rel_err={rel:.3e} ms_median={statistics.median(times) * 1e3:.3f} "
          f"ms_min={min(times) * 1e3:.3f} reps={a.reps} cpu_ms_median={statistics.median(cpu) * 1e3:.3f}", flush=True)


if __name__ == "__main__":
    main()

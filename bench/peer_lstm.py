"""PyTorch peer of bench/lstm_sparse and `frugal lstm bench`: torch.nn.LSTM (--layers, default 1,
time-major) at the same sizes, forward and backward (y.backward(dy), gradients of x, h0, c0 and every parameter)
timed separately; the median of --iters runs after --warmup. Prints one line:
`peer fwd_ms=<float> bwd_ms=<float>`. Run by bench/lstm_sparse (which sets OPENBLAS_CORETYPE and
the thread count); usable alone:
  /usr/bin/python3 bench/peer_lstm.py --T 35 --B 32 --I 650 --H 650 --iters 5 --threads 2"""
import argparse
import statistics
import time

import torch
import torch.nn as nn


def main():
    ap = argparse.ArgumentParser()
    for k in ("T", "B", "I", "H"):
        ap.add_argument("--" + k, type=int, required=True)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layers", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    lstm = nn.LSTM(a.I, a.H, num_layers=a.layers)
    x = torch.randn(a.T, a.B, a.I, requires_grad=True)
    h0 = torch.randn(a.layers, a.B, a.H, requires_grad=True)
    c0 = torch.randn(a.layers, a.B, a.H, requires_grad=True)
    dy = torch.randn(a.T, a.B, a.H)
    fwd, bwd = [], []
    for it in range(a.warmup + a.iters):
        t0 = time.perf_counter()
        y, _ = lstm(x, (h0, c0))
        t1 = time.perf_counter()
        y.backward(dy)
        t2 = time.perf_counter()
        if it >= a.warmup:
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
    print(f"peer fwd_ms={statistics.median(fwd) * 1e3:.3f} bwd_ms={statistics.median(bwd) * 1e3:.3f}", flush=True)


if __name__ == "__main__":
    main()

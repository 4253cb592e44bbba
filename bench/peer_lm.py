"""PyTorch peer of `frugal lm train` (bench/lm_sparse.sh): the same word-level LSTM language model
(embedding, `layers` single-layer nn.LSTMs, linear decoder; U(-0.1, 0.1) embedding and decoder
weights, zero decoder bias), the same data (the PTB-style Brown files in the data directory,
vocabulary in order of first appearance in train with <eos> = 0 after every line), the same
batching (B streams, chunks of T words predicting the next ones, each chunk starting from the
state the previous one ended in, detached; zeros at the start of training and of the evaluation),
SGD with clipping at the same rate, over the same number of chunks.
Prints one line:
  `peer words_per_s=<float> ms_per_batch=<float> train_ppl=<float> valid_ppl=<float>`
where words/s and ms/batch exclude the first `--warmup` chunks. Usable alone:
  OPENBLAS_CORETYPE=COOPERLAKE /usr/bin/python3 bench/peer_lm.py --data-dir ~/.cache/frugal \
      --hidden 650 --layers 2 --steps 35 --batch 20 --max-batches 200 --eval-batches 50 --threads 2"""
import argparse
import math
import os
import time

import torch
import torch.nn as nn


def read_split(path, vocab, grow):
    ids = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            words = line.split()
            if not words:
                continue
            for w in words:
                if w not in vocab:
                    if not grow:
                        w = "<unk>"
                    else:
                        vocab[w] = len(vocab)
                ids.append(vocab[w])
            ids.append(0)
    return torch.tensor(ids, dtype=torch.long)


def streams(ids, B):
    L = ids.numel() // B
    return ids[: L * B].view(B, L).t().contiguous()  # (L, B): column b is stream b


class LM(nn.Module):
    def __init__(self, V, E, H, layers, dropout):
        super().__init__()
        self.embed = nn.Embedding(V, E)
        self.lstms = nn.ModuleList(nn.LSTM(E if k == 0 else H, H) for k in range(layers))
        self.drop = nn.Dropout(dropout)
        self.decoder = nn.Linear(H, V)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, x, state):
        h = self.drop(self.embed(x))
        out = []
        for lstm, s in zip(self.lstms, state):
            h, s = lstm(h, s)
            out.append((s[0].detach(), s[1].detach()))  # truncated BPTT: no gradient into the last chunk
            h = self.drop(h)
        return self.decoder(h.view(-1, h.size(2))), out

    def zero_state(self, B):
        H = self.decoder.in_features
        return [(torch.zeros(1, B, H), torch.zeros(1, B, H)) for _ in self.lstms]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=os.environ.get("FRUGAL_DATA", os.path.expanduser("~/.cache/frugal")))
    ap.add_argument("--data", default="brown")
    for k, v in (("hidden", 200), ("embed", 0), ("layers", 2), ("steps", 20), ("batch", 20), ("max-batches", 200),
                 ("eval-batches", 50), ("warmup", 5), ("threads", 2), ("seed", 1)):
        ap.add_argument("--" + k, type=int, default=v)
    ap.add_argument("--lr", type=float, default=1.0)
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument("--dropout", type=float, default=0.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    vocab = {"<eos>": 0}
    base = os.path.join(a.data_dir, a.data)
    train = streams(read_split(base + ".train.txt", vocab, True), a.batch)
    valid = streams(read_split(base + ".valid.txt", vocab, False), a.batch)
    T = a.steps
    model = LM(len(vocab), a.embed or a.hidden, a.hidden, a.layers, a.dropout)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    crit = nn.CrossEntropyLoss()
    chunks = min(a.max_batches, (train.size(0) - 1) // T)
    model.train()
    total, t0 = 0.0, None
    state = model.zero_state(a.batch)
    for k in range(chunks):
        if k == a.warmup:
            t0 = time.perf_counter()
        x, y = train[k * T:(k + 1) * T], train[k * T + 1:(k + 1) * T + 1]
        opt.zero_grad()
        logits, state = model(x, state)
        loss = crit(logits, y.reshape(-1))
        loss.backward()
        if a.clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        total += loss.item()
    secs = time.perf_counter() - t0
    timed = chunks - a.warmup
    model.eval()
    ev = min(a.eval_batches, (valid.size(0) - 1) // T) if a.eval_batches > 0 else (valid.size(0) - 1) // T
    vsum = 0.0
    state = model.zero_state(a.batch)
    with torch.no_grad():
        for k in range(ev):
            x, y = valid[k * T:(k + 1) * T], valid[k * T + 1:(k + 1) * T + 1]
            logits, state = model(x, state)
            vsum += crit(logits, y.reshape(-1)).item()
    print(f"peer words_per_s={timed * T * a.batch / secs:.1f} ms_per_batch={1e3 * secs / timed:.3f} "
          f"train_ppl={math.exp(total / chunks):.3f} valid_ppl={math.exp(vsum / ev):.3f}", flush=True)


if __name__ == "__main__":
    main()

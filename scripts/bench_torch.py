#!/usr/bin/env python3
"""PyTorch side of scripts/bench.sh: the same step as csslm-bench on the same shapes, one config
per process (so the peak RSS is this config's), printed as JSON lines for `csslm-bench report`.

What it runs (randomly initialised weights, as csslm-bench):
  inference: HF transformers BertModel (no pooler, default attention implementation) forward under
             torch.inference_mode(), then the classifier head, dropout off.
  train:     BertModel + the CSS-LM classifier head (concat [CLS] and [SEP] vectors → dropout →
             Linear(2H, 2H) → tanh → dropout → Linear(2H, 2)), dropout 0.1, cross-entropy, backward,
             clip_grad_norm_(1.0), torch.optim.AdamW (lr 1e-5, weight decay 0.01, none on biases and
             LayerNorm weights), zero_grad.
  --gemm-inference/--gemm-train M,N,K,TA,TB ...: after the model, torch.mm at these row-major shapes (TA/TB: the
             operand is stored transposed and passed as a .t() view, as the step's dx/dW products),
             the same shapes csslm-bench's sgemm ceiling times (csslm-bench shapes): FLOP-weighted
             GFLOP/s of one pass over the shapes, median of --repeats passes after a warm-up pass.
Timing: median of --repeats runs after one warm-up run. Threads: torch.set_num_threads(--threads),
interop 1; the caller also sets OMP_NUM_THREADS.
"""
import argparse
import json
import resource
import statistics
import time

import torch
import transformers
from transformers import BertConfig, BertModel

MODELS = {
    "minilm": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
    "bert-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}


class Classifier(torch.nn.Module):
    def __init__(self, config, labels=2):
        super().__init__()
        self.bert = BertModel(config, add_pooling_layer=False)
        h2 = 2 * config.hidden_size
        self.dropout = torch.nn.Dropout(config.hidden_dropout_prob)
        self.dense = torch.nn.Linear(h2, h2)
        self.out_proj = torch.nn.Linear(h2, labels)

    def forward(self, ids, mask, sep):
        last = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        rows = torch.arange(ids.shape[0])
        x = torch.cat([last[:, 0], last[rows, sep]], dim=-1)
        x = torch.tanh(self.dense(self.dropout(x)))
        return self.out_proj(self.dropout(x))


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def timed(repeats, body):
    body()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        body()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def gemm(args, label, words):
    g = torch.Generator().manual_seed(3)
    shapes, work = [], []
    for word in words:
        m, n, k, ta, tb = map(int, word.split(","))
        a = torch.rand((k, m) if ta else (m, k), generator=g)
        b = torch.rand((n, k) if tb else (k, n), generator=g)
        work.append((a.t() if ta else a, b.t() if tb else b, torch.empty(m, n)))
        shapes.append((m, n, k))
    flops = sum(2.0 * m * n * k for m, n, k in shapes)

    def one_pass():
        for a, b, c in work:
            torch.mm(a, b, out=c)

    seconds = timed(args.repeats, one_pass)
    print(json.dumps(dict(impl="pytorch-gemm", model=args.model, batch=args.batch, seq=args.seq, mode=label,
                          threads=args.threads, torch=torch.__version__, gflops=flops / seconds / 1e9)), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="minilm", choices=sorted(MODELS))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--modes", default="inference,train")
    ap.add_argument("--gemm-inference", nargs="+", default=[], metavar="M,N,K,TA,TB")
    ap.add_argument("--gemm-train", nargs="+", default=[], metavar="M,N,K,TA,TB")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(1)
    config = BertConfig(vocab_size=30522, **MODELS[args.model])
    model = Classifier(config)
    b, t = args.batch, args.seq
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(1000, 21000, (b, t), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    mask = torch.ones(b, t, dtype=torch.long)
    sep = torch.full((b,), t - 1)
    labels = torch.arange(b) % 2
    common = dict(impl="pytorch", model=args.model, batch=b, seq=t, threads=args.threads,
                  torch=torch.__version__, transformers=transformers.__version__,
                  attention=model.bert.config._attn_implementation)
    for mode in args.modes.split(","):
        if mode == "inference":
            model.eval()

            def step():
                with torch.inference_mode():
                    model(ids, mask, sep)
        else:
            model.train()
            decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
            other = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
            opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                     {"params": other, "weight_decay": 0.0}], lr=1e-5)
            loss_fn = torch.nn.CrossEntropyLoss()

            def step():
                loss = loss_fn(model(ids, mask, sep), labels)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                opt.zero_grad()
        seconds = timed(args.repeats, step)
        print(json.dumps(dict(common, mode=mode, ms=seconds * 1e3, rss_mb=peak_rss_mb())), flush=True)
    for label, words in (("inference", args.gemm_inference), ("train", args.gemm_train)):
        if words:
            gemm(args, label, words)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes the encoder's reference fixtures with PyTorch + HF transformers (dev time only).

Creates (committed, small):
  Tests/CSSLMTests/Fixtures/tiny_bert.safetensors   a tiny random BERT + CSS-LM classifier head:
      inputs, every layer's hidden states, logits, loss, every parameter gradient, and the losses
      and final weights of 10 AdamW steps (dropout off, warmup + linear decay, clipping)
  Tests/CSSLMTests/Fixtures/minilm_hidden.safetensors   the real all-MiniLM-L6-v2: token ids from
      HF's tokenizer and last hidden states for 8 real sentences of mixed length
  Tests/CSSLMTests/Fixtures/pair_loss.safetensors, task_domain_loss.safetensors   L_pair, L_task, L_dom
  Tests/CSSLMTests/Fixtures/supcon_loss.safetensors   SupCon (Khosla et al. 2020) with masked anchors

Usage (PyTorch is not needed in CI; the fixtures are committed):
  python3 -m venv .venv-ref && .venv-ref/bin/pip install "torch==2.13.0+cpu" transformers safetensors
  bash scripts/setup.sh            # the MiniLM model into assets/
  .venv-ref/bin/python scripts/make_reference.py            # every fixture
  .venv-ref/bin/python scripts/make_reference.py supcon     # only the named ones (tiny, pair, supcon, minilm)
"""
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertModel, BertTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "CSSLMTests", "Fixtures")
MODEL = os.path.join(ROOT, "assets", "models", "all-MiniLM-L6-v2")


class ClassifierHead(torch.nn.Module):
    """docs/method.md#classifier: concat(t, e) -> dropout -> Linear(2H, 2H) -> tanh -> dropout -> Linear(2H, C)."""

    def __init__(self, hidden, classes, p):
        super().__init__()
        self.drop = torch.nn.Dropout(p)
        self.dense = torch.nn.Linear(2 * hidden, 2 * hidden)
        self.out_proj = torch.nn.Linear(2 * hidden, classes)

    def forward(self, last, sep_positions):
        rows = torch.arange(last.shape[0])
        feat = torch.cat([last[:, 0], last[rows, sep_positions]], dim=-1)
        return self.out_proj(self.drop(torch.tanh(self.dense(self.drop(feat)))))


def tiny_fixture():
    torch.manual_seed(1234)
    cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=16, type_vocab_size=2,
                     hidden_act="gelu", layer_norm_eps=1e-12, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    cfg._attn_implementation = "eager"
    enc = BertModel(cfg, add_pooling_layer=False)
    head = ClassifierHead(32, 3, 0.0)
    # Larger-than-default random weights so attention, GELU and tanh all work off their linear parts.
    with torch.no_grad():
        for name, p in list(enc.named_parameters()) + [("classifier." + n, p) for n, p in head.named_parameters()]:
            if "LayerNorm.weight" in name:
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    # B = 3 sequences, T = 8: a pair (token types 0/1), and two padded singles. [CLS] = 2, [SEP] = 3.
    ids = torch.tensor([[2, 17, 45, 3, 88, 9, 61, 3],
                        [2, 33, 71, 5, 3, 0, 0, 0],
                        [2, 99, 3, 0, 0, 0, 0, 0]])
    types = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1], [0] * 8, [0] * 8])
    mask = (torch.arange(8)[None, :] < torch.tensor([8, 5, 3])[:, None]).long()
    sep = torch.tensor([3, 4, 2])
    labels = torch.tensor([2, 0, 1])

    named = [(n, p) for n, p in enc.named_parameters()] + [("classifier." + n, p) for n, p in head.named_parameters()]
    out = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask, "sep_positions": sep, "labels": labels}
    for n, p in named:
        out["param." + n] = p.detach().clone()

    def loss_fn(keep=None):
        o = enc(input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
        logits = head(o.last_hidden_state, sep)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        if keep is not None:
            keep["hidden"] = o.hidden_states
            keep["logits"] = logits
        return loss

    enc.eval(); head.eval()
    keep = {}
    loss = loss_fn(keep)
    loss.backward()
    for i, h in enumerate(keep["hidden"]):
        out[f"hidden_states.{i}"] = h.detach()
    out["logits"] = keep["logits"].detach()
    out["loss"] = loss.detach().reshape(1)
    for n, p in named:
        out["grad." + n] = p.grad.detach().clone()

    # 10 AdamW steps on the same batch: decay except bias/LayerNorm, warmup 2 then linear decay, clip 1.
    for _, p in named:
        p.grad = None
    decay = [p for n, p in named if not (n.endswith("bias") or "LayerNorm" in n)]
    no_decay = [p for n, p in named if n.endswith("bias") or "LayerNorm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=3e-3, betas=(0.9, 0.999), eps=1e-8)
    total, warmup = 10, 2
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: s / max(1, warmup) if s < warmup else max(0.0, (total - s) / max(1, total - warmup)))
    losses, norms = [], []
    for _ in range(total):
        loss = loss_fn()
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)))
        opt.step(); sched.step(); opt.zero_grad()
        losses.append(float(loss.detach()))
    out["adamw.losses"] = torch.tensor(losses)
    out["adamw.grad_norms"] = torch.tensor(norms)
    out["adamw.lr"] = torch.tensor([3e-3])
    for n, p in named:
        out["adamw.param." + n] = p.detach().clone()
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(OUT, "tiny_bert.safetensors"),
              metadata={"config": cfg.to_json_string(use_diff=False)})
    print("tiny_bert: loss", out["loss"].item(), "10-step losses", [round(x, 5) for x in losses])


SENTENCES = [
    "A gorgeous, witty, seductive movie.",
    "The film is strictly routine.",
    "If you sometimes like to go to the movies to have fun, Wasabi is a good place to start.",
    "Emerges as something rare, an issue movie that's so honest and keenly observed that it doesn't feel like one.",
    "Offers that rare combination of entertainment and education.",
    "Perhaps no picture ever made has more literally showed that the road to hell is paved with good intentions.",
    "Steers turns in a snappy screenplay that curls at the edges; it's so clever you want to hate it. But he somewhat "
    "tempers it with a lot of heart, and the result is a film that is both light and deeply affecting.",
    "Boring.",
]


def minilm_fixture():
    if not os.path.exists(os.path.join(MODEL, "model.safetensors")):
        sys.exit(f"{MODEL} missing: run scripts/setup.sh first")
    tok = BertTokenizer.from_pretrained(MODEL)
    model = BertModel.from_pretrained(MODEL, attn_implementation="eager").eval()
    enc = tok(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        last = model(**enc).last_hidden_state
    save_file({"input_ids": enc["input_ids"].contiguous(), "attention_mask": enc["attention_mask"].contiguous(),
               "token_type_ids": enc["token_type_ids"].contiguous(), "last_hidden_state": last.contiguous()},
              os.path.join(OUT, "minilm_hidden.safetensors"))
    print("minilm: batch", tuple(enc["input_ids"].shape))


def pair_loss_fixture():
    """L_pair (docs/method.md#losses): mean over all ordered pairs (i = j included) of
    CE(pair([e_i; e_j; t_i; t_j]), same label)."""
    torch.manual_seed(99)
    n, h = 6, 8
    e = torch.randn(n, h, requires_grad=True)
    t = torch.randn(n, h, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    pair = torch.nn.Linear(4 * h, 2)
    with torch.no_grad():
        pair.weight.mul_(3)
    ii, jj = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    ii, jj = ii.reshape(-1), jj.reshape(-1)
    logits = pair(torch.cat([e[ii], e[jj], t[ii], t[jj]], dim=-1))
    loss = torch.nn.functional.cross_entropy(logits, (labels[ii] == labels[jj]).long())
    loss.backward()
    save_file({"e": e.detach(), "t": t.detach(), "labels": labels, "weight": pair.weight.detach().contiguous(),
               "bias": pair.bias.detach(), "loss": loss.detach().reshape(1), "grad.e": e.grad, "grad.t": t.grad,
               "grad.weight": pair.weight.grad.contiguous(), "grad.bias": pair.bias.grad},
              os.path.join(OUT, "pair_loss.safetensors"))
    print("pair loss", loss.item())

    # L_task: taskPair = Linear(2H, 2) on [t_i; t_j] vs same label, all ordered pairs.
    t2 = t.detach().clone().requires_grad_(True)
    task = torch.nn.Linear(2 * h, 2)
    with torch.no_grad():
        task.weight.mul_(3)
    lt = torch.nn.functional.cross_entropy(task(torch.cat([t2[ii], t2[jj]], dim=-1)), (labels[ii] == labels[jj]).long())
    lt.backward()
    # L_dom: domainPair = Linear(2H, 2) on [e_q; e_d]; positives: all labelled pairs (target 1),
    # negatives: every query against each of 4 corpus vectors (target 0); mean over all pairs.
    e2 = e.detach().clone().requires_grad_(True)
    neg = torch.randn(4, h, requires_grad=True)
    dom = torch.nn.Linear(2 * h, 2)
    with torch.no_grad():
        dom.weight.mul_(3)
    qi, nj = torch.meshgrid(torch.arange(n), torch.arange(4), indexing="ij")
    qi, nj = qi.reshape(-1), nj.reshape(-1)
    logits_dom = torch.cat([dom(torch.cat([e2[ii], e2[jj]], dim=-1)), dom(torch.cat([e2[qi], neg[nj]], dim=-1))])
    targets_dom = torch.cat([torch.ones(n * n, dtype=torch.long), torch.zeros(n * 4, dtype=torch.long)])
    ld = torch.nn.functional.cross_entropy(logits_dom, targets_dom)
    ld.backward()
    save_file({"t": t2.detach(), "e": e2.detach(), "labels": labels, "negatives": neg.detach(),
               "task.weight": task.weight.detach().contiguous(), "task.bias": task.bias.detach(),
               "task.loss": lt.detach().reshape(1), "task.grad.t": t2.grad, "task.grad.weight": task.weight.grad.contiguous(),
               "task.grad.bias": task.bias.grad,
               "dom.weight": dom.weight.detach().contiguous(), "dom.bias": dom.bias.detach(),
               "dom.loss": ld.detach().reshape(1), "dom.grad.e": e2.grad, "dom.grad.negatives": neg.grad,
               "dom.grad.weight": dom.weight.grad.contiguous(), "dom.grad.bias": dom.bias.grad},
              os.path.join(OUT, "task_domain_loss.safetensors"))
    print("task loss", lt.item(), "domain loss", ld.item())


def supcon_fixture():
    """SupCon, Khosla et al. 2020 eq. 2 (L_out), written from the formula: z = f/|f|, s_ij = z_i.z_j/tau,
    l_i = -1/|P_i| sum_{p in P_i} (s_ip - log sum_{j != i} exp s_ij), mean over anchors with |P_i| > 0."""
    torch.manual_seed(7)
    n, d, tau = 9, 8, 0.1
    # Row norms from 0.3 to 3 so the normalisation's backward matters; class 3 has one member, so
    # anchor 8 has no positive (masked), and class 2 has two.
    features = (torch.randn(n, d) * torch.linspace(0.3, 3.0, n)[:, None]).requires_grad_(True)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 2, 1, 3])
    z = torch.nn.functional.normalize(features, dim=1)
    s = z @ z.T / tau
    self_mask = torch.eye(n, dtype=torch.bool)
    log_prob = s - torch.logsumexp(s.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
    positive = (labels[:, None] == labels[None, :]) & ~self_mask
    count = positive.sum(1)
    valid = count > 0
    per_anchor = -(log_prob * positive).sum(1)[valid] / count[valid]
    loss = per_anchor.mean()
    loss.backward()
    save_file({"features": features.detach(), "labels": labels, "temperature": torch.tensor([tau]),
               "loss": loss.detach().reshape(1), "masked_anchors": torch.tensor([int((~valid).sum())]),
               "grad.features": features.grad},
              os.path.join(OUT, "supcon_loss.safetensors"))
    print("supcon loss", loss.item(), "masked anchors", int((~valid).sum()))


FIXTURES = {"tiny": tiny_fixture, "pair": pair_loss_fixture, "supcon": supcon_fixture, "minilm": minilm_fixture}

if __name__ == "__main__":
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    wanted = sys.argv[1:] or list(FIXTURES)
    unknown = [w for w in wanted if w not in FIXTURES]
    if unknown:
        sys.exit(f"unknown fixture(s) {unknown}; choose from {list(FIXTURES)}")
    for name in wanted:
        FIXTURES[name]()
    for f in os.listdir(OUT):
        os.chmod(os.path.join(OUT, f), 0o644)

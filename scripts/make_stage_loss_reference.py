#!/usr/bin/env python3
"""Writes Tests/CSSLMTests/Fixtures/stage_losses.safetensors: the WHOLE loss that each training
stage adds to the classifier's CE (docs/method.md#losses, #stages), and its gradients with respect
to the features and the heads, by PyTorch autograd from the formulas (dev time only; committed).

  init.<variant>   stage 1 on a labelled batch Q of B = 6:  L(Q) + L_task + L_dom,
                   L = L_pair (pair head on [e_i; e_j; t_i; t_j], B^2 pairs) or SupCon on t;
                   L_task: taskPair on [t_i; t_j] vs same label over Q x Q (B^2 pairs);
                   L_dom: domainPair on [e_i; e_j] over Q x Q (target 1) and [e_q; n] against
                   N = 4 negatives (target 0), mean over B (B + N) pairs;
                   variants: pair, supcon, pair_detached (L_task and L_dom on detached features)
  main.<variant>   stage 3 (csslm) on M = B (K + 1) rows, B = 3, K = 2, each query after its K
                   documents (query rows 2, 5, 8; documents carry the query's label):
                   1/2 (L(Q) + L(M)); variants: pair, supcon (one query has no positive in Q)
  ce.<method>      stage 3's CE over M's logits: csslm the mean over the queries only;
                   selftrain the mean over the queries + the mean over the retrieved documents

Usage: .venv-ref/bin/python scripts/make_stage_loss_reference.py   (torch, safetensors)
"""
import os

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "CSSLMTests", "Fixtures", "stage_losses.safetensors")
H, TAU = 8, 0.1


def head(inputs):
    """A linear 2-way head with larger-than-default weights, so the CE works off ln 2."""
    layer = torch.nn.Linear(inputs * H, 2)
    with torch.no_grad():
        layer.weight.mul_(3)
    return layer


def all_pairs(n):
    ii, jj = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    return ii.reshape(-1), jj.reshape(-1)


def l_pair(pair, t, e, labels):
    ii, jj = all_pairs(len(labels))
    logits = pair(torch.cat([e[ii], e[jj], t[ii], t[jj]], dim=-1))
    return torch.nn.functional.cross_entropy(logits, (labels[ii] == labels[jj]).long())


def supcon(f, labels):
    z = torch.nn.functional.normalize(f, dim=1)
    s = z @ z.T / TAU
    self_mask = torch.eye(len(labels), dtype=torch.bool)
    log_prob = s - torch.logsumexp(s.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
    positive = (labels[:, None] == labels[None, :]) & ~self_mask
    count = positive.sum(1)
    valid = count > 0
    return (-(log_prob * positive).sum(1)[valid] / count[valid]).mean(), int((~valid).sum())


def features(n, seed):
    """t, e [n, H] with row norms from 0.3 to 3 (SupCon's normalisation matters)."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.linspace(0.3, 3.0, n)[:, None]
    t = (torch.randn(n, H, generator=g) * scale).requires_grad_(True)
    e = (torch.randn(n, H, generator=g) * scale.flip(0)).requires_grad_(True)
    return t, e


def save_grads(out, prefix, named):
    for name, tensor in named.items():
        out[f"{prefix}.grad.{name}"] = tensor.grad.contiguous() if tensor.grad is not None else torch.zeros_like(tensor)


def init_fixture(out):
    torch.manual_seed(13)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    b, n = len(labels), 4
    t, e = features(b, 1)
    negatives = torch.randn(n, H)
    pair, task, dom = head(4), head(2), head(2)
    out.update({"init.t": t.detach(), "init.e": e.detach(), "init.labels": labels, "init.negatives": negatives,
                "init.temperature": torch.tensor([TAU])})
    for name, layer in [("pair", pair), ("task", task), ("dom", dom)]:
        out[f"init.{name}.weight"] = layer.weight.detach().contiguous()
        out[f"init.{name}.bias"] = layer.bias.detach()
    ii, jj = all_pairs(b)
    qi, nj = torch.meshgrid(torch.arange(b), torch.arange(n), indexing="ij")
    qi, nj = qi.reshape(-1), nj.reshape(-1)
    for variant in ["pair", "supcon", "pair_detached"]:
        for p in [t, e] + list(pair.parameters()) + list(task.parameters()) + list(dom.parameters()):
            p.grad = None
        if variant == "supcon":
            contrastive, masked = supcon(t, labels)
        else:
            contrastive, masked = l_pair(pair, t, e, labels), 0
        tt, ee = (t.detach(), e.detach()) if variant == "pair_detached" else (t, e)
        l_task = torch.nn.functional.cross_entropy(task(torch.cat([tt[ii], tt[jj]], dim=-1)), (labels[ii] == labels[jj]).long())
        dom_logits = torch.cat([dom(torch.cat([ee[ii], ee[jj]], dim=-1)), dom(torch.cat([ee[qi], negatives[nj]], dim=-1))])
        dom_targets = torch.cat([torch.ones(b * b, dtype=torch.long), torch.zeros(b * n, dtype=torch.long)])
        l_dom = torch.nn.functional.cross_entropy(dom_logits, dom_targets)
        total = contrastive + l_task + l_dom
        total.backward()
        prefix = f"init.{variant}"
        out[f"{prefix}.parts"] = torch.stack([contrastive, l_task, l_dom]).detach()
        out[f"{prefix}.loss"] = total.detach().reshape(1)
        out[f"{prefix}.masked_anchors"] = torch.tensor([masked])
        save_grads(out, prefix, {"t": t, "e": e, "pair.weight": pair.weight, "pair.bias": pair.bias,
                                 "task.weight": task.weight, "task.bias": task.bias,
                                 "dom.weight": dom.weight, "dom.bias": dom.bias})
        print(prefix, "loss", total.item(), "parts", out[f"{prefix}.parts"].tolist())


def main_fixture(out):
    torch.manual_seed(31)
    b, k = 3, 2
    query_labels = torch.tensor([0, 1, 0])
    labels = query_labels.repeat_interleave(k + 1)
    queries = torch.arange(b) * (k + 1) + k
    t, e = features(b * (k + 1), 2)
    pair = head(4)
    out.update({"main.t": t.detach(), "main.e": e.detach(), "main.labels": labels, "main.query_rows": queries,
                "main.top_k": torch.tensor([k]), "main.temperature": torch.tensor([TAU]),
                "main.pair.weight": pair.weight.detach().contiguous(), "main.pair.bias": pair.bias.detach()})
    for variant in ["pair", "supcon"]:
        for p in [t, e, pair.weight, pair.bias]:
            p.grad = None
        if variant == "pair":
            l_q, l_m, masked = l_pair(pair, t[queries], e[queries], labels[queries]), l_pair(pair, t, e, labels), 0
        else:
            (l_q, masked_q), (l_m, masked_m) = supcon(t[queries], labels[queries]), supcon(t, labels)
            masked = masked_q + masked_m
        total = 0.5 * (l_q + l_m)
        total.backward()
        prefix = f"main.{variant}"
        out[f"{prefix}.parts"] = torch.stack([0.5 * l_q, 0.5 * l_m]).detach()
        out[f"{prefix}.loss"] = total.detach().reshape(1)
        out[f"{prefix}.masked_anchors"] = torch.tensor([masked])
        save_grads(out, prefix, {"t": t, "e": e, "pair.weight": pair.weight, "pair.bias": pair.bias})
        print(prefix, "loss", total.item(), "masked", masked)


def ce_fixture(out):
    torch.manual_seed(57)
    b, k, c = 3, 2, 4
    labels = torch.tensor([2, 0, 3]).repeat_interleave(k + 1)
    is_query = (torch.arange(b * (k + 1)) % (k + 1)) == k
    logits = (3 * torch.randn(b * (k + 1), c)).requires_grad_(True)
    out.update({"ce.logits": logits.detach(), "ce.labels": labels, "ce.is_query": is_query.long(), "ce.top_k": torch.tensor([k])})
    for method in ["csslm", "selftrain"]:
        logits.grad = None
        loss = torch.nn.functional.cross_entropy(logits[is_query], labels[is_query])
        if method == "selftrain":
            loss = loss + torch.nn.functional.cross_entropy(logits[~is_query], labels[~is_query])
        loss.backward()
        out[f"ce.{method}.loss"] = loss.detach().reshape(1)
        out[f"ce.{method}.grad.logits"] = logits.grad.contiguous()
        print(f"ce.{method}", loss.item())


if __name__ == "__main__":
    torch.set_num_threads(1)
    fixture = {}
    init_fixture(fixture)
    main_fixture(fixture)
    ce_fixture(fixture)
    save_file({name: tensor.contiguous() for name, tensor in fixture.items()}, OUT)
    os.chmod(OUT, 0o644)
    print("wrote", OUT)

#!/usr/bin/env python3
"""Writes the `probe` reference fixture: scikit-learn's logistic regression on frozen MiniLM features
(dev time only; the fixture is committed and the Swift test reads it).

Creates Tests/CSSLMTests/Fixtures/probe_reference.safetensors (F32, little-endian), two cases:
  binary   16 examples per class from rotten_tomatoes/train.jsonl, 24 from rotten_tomatoes/dev.jsonl
  multi    16 examples per class from twitter_sentiment/train.jsonl (3 classes), 24 from its dev.jsonl
each drawn with numpy.random.default_rng(SEED) (fixed; not csslm's SplitMix64 sampler: the fixture
only has to be a fixed, realistic problem). Tensors, for <case> in {binary, multi}:
  <case>.train_x     [n, d]   features of the training examples (n = 16 * classes, d = 384)
  <case>.train_y     [n]      class index (line of labels.txt), stored as float
  <case>.coef        [1, d] for binary, [C, d] for C >= 3 classes (as sklearn's coef_)
  <case>.intercept   [1] or [C]                              (as sklearn's intercept_)
  <case>.test_x      [m, d]   features of the held-out examples (m = 24)
  <case>.test_proba  [m, C]   sklearn's predict_proba (column c = class c; C = 2 for binary)
  <case>.objective   [1]      the penalised objective below at sklearn's solution, in float64
__metadata__: sklearn / torch / transformers / numpy versions, the estimator's settings, the seed, and
"<case>.objective": the objective at full float64 precision (repr), as a string.

Features (what csslm's probe must compute): HF transformers BertModel on the local
all-MiniLM-L6-v2, its own tokenizer, truncation to 64 tokens ([CLS] and [SEP] included), the last
hidden layer averaged over the real tokens (attention mask = 1, so [CLS] and [SEP] count, padding
does not), then divided by its L2 norm. The float32 features are what sklearn is fitted on (cast
to float64), so the stored train_x are exactly the fitted inputs.

Estimator: sklearn.linear_model.LogisticRegression(C=1.0, solver="lbfgs", max_iter=10000,
tol=1e-10): scikit-learn's defaults (penalty L2, C = 1, fit_intercept, lbfgs) except that it runs to
full convergence. The objective it minimises (checked against the docs of the installed version,
user guide section 1.1.11 "Logistic regression", and numerically below):
  binary (2 classes): one weight vector w (coef_ [1, d]) and intercept b, p(class 1 | x) = sigmoid(w.x + b),
      min  1/2 ||w||^2 + C * sum_i logloss_i,   logloss_i = log(1 + exp(-s_i (w.x_i + b))), s_i = +-1
  >= 3 classes: multinomial (softmax) with one row per class, W [C, d], b [C],
      min  1/2 ||W||_F^2 + C * sum_i -log softmax(W x_i + b)[y_i]
  The intercept is never penalised. In the multinomial case the intercepts are then defined only up
  to a common constant (the softmax ignores it); sklearn's lbfgs starts from zero and every gradient
  it follows sums to zero over the classes, so the intercept it returns (and stores here) sums to
  zero (|sum| ~ 1e-15). A Swift solver should centre its intercepts (subtract their mean) before
  comparing, or compare probabilities and the objective. At the optimum the rows of W also sum to
  zero (the penalty's gradient is W and the data gradient sums to zero over classes).
  sklearn's code minimises (1/n) * sum loss + 1/(2 C n) ||w||^2 (l2_reg_strength = 1/(C * n)), the
  same problem divided by C * n; the value stored is the unscaled one above.
  Fit here: lbfgs converges in 11 (binary) and 23 (multi) iterations, max |gradient| < 1e-6.

Usage:
  .venv-ref/bin/pip install "torch==2.13.0+cpu" transformers scikit-learn safetensors numpy
  HF_HUB_OFFLINE=1 .venv-ref/bin/python scripts/make_probe_reference.py
  (or bash scripts/make_reference.sh, which runs every make_*reference.py in .venv-ref)
"""
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import sklearn
import torch
import transformers
from safetensors.numpy import save_file
from sklearn.linear_model import LogisticRegression
from transformers import AutoTokenizer, BertModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "CSSLMTests", "Fixtures", "probe_reference.safetensors")
MODEL = os.path.join(ROOT, "assets", "models", "all-MiniLM-L6-v2")
DATA = os.path.join(ROOT, "assets", "data")
SEED = 20240614
PER_CLASS = 16
HELD_OUT = 24
MAX_LENGTH = 64
SETTINGS = dict(C=1.0, solver="lbfgs", max_iter=10000, tol=1e-10)
CASES = [("binary", "rotten_tomatoes"), ("multi", "twitter_sentiment")]


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def draw(dataset, rng):
    folder = os.path.join(DATA, dataset)
    with open(os.path.join(folder, "labels.txt"), encoding="utf-8") as f:
        labels = [line.strip() for line in f if line.strip()]
    index = {name: i for i, name in enumerate(labels)}
    train = read_jsonl(os.path.join(folder, "train.jsonl"))
    dev = read_jsonl(os.path.join(folder, "dev.jsonl"))
    texts, ys = [], []
    for c, name in enumerate(labels):
        members = [r["text"] for r in train if r["label"] == name]
        for i in rng.choice(len(members), size=PER_CLASS, replace=False):
            texts.append(members[i])
            ys.append(c)
    held = rng.choice(len(dev), size=HELD_OUT, replace=False)
    test_texts = [dev[i]["text"] for i in held]
    test_y = [index[dev[i]["label"]] for i in held]
    return labels, texts, np.array(ys), test_texts, np.array(test_y)


@torch.no_grad()
def features(model, tok, texts):
    batch = tok(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
    last = model(**batch).last_hidden_state                      # [B, T, H]
    mask = batch["attention_mask"].unsqueeze(-1).to(last.dtype)  # [B, T, 1]
    mean = (last * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(mean, p=2, dim=-1).numpy().astype(np.float32)


def objective(x, y, coef, intercept, classes, C):
    """The penalised objective of the module docstring, float64."""
    x, coef, intercept = x.astype(np.float64), coef.astype(np.float64), intercept.astype(np.float64)
    z = x @ coef.T + intercept                                   # [n, 1] or [n, C]
    if classes == 2:
        s = np.where(y == 1, 1.0, -1.0)
        data = np.logaddexp(0.0, -s * z[:, 0]).sum()
    else:
        top = z.max(axis=1, keepdims=True)
        lse = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
        data = (lse - z[np.arange(len(y)), y]).sum()
    return 0.5 * float((coef ** 2).sum()) + C * float(data)


def main():
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(MODEL, local_files_only=True)
    model = BertModel.from_pretrained(MODEL, local_files_only=True, add_pooling_layer=False).eval()
    rng = np.random.default_rng(SEED)
    tensors, exact = {}, {}
    for case, dataset in CASES:
        labels, texts, y, test_texts, test_y = draw(dataset, rng)
        k = len(labels)
        x = features(model, tok, texts)
        tx = features(model, tok, test_texts)
        clf = LogisticRegression(**SETTINGS).fit(x.astype(np.float64), y)
        assert clf.n_iter_.max() < SETTINGS["max_iter"], "lbfgs did not converge"
        coef, intercept = clf.coef_, clf.intercept_
        assert coef.shape == ((1, x.shape[1]) if k == 2 else (k, x.shape[1]))
        proba = clf.predict_proba(tx.astype(np.float64))
        obj = objective(x, y, coef, intercept, k, SETTINGS["C"])
        # The docstring's objective is the one sklearn minimises: its gradient vanishes at the solution.
        xd = x.astype(np.float64)
        z = xd @ coef.T + intercept
        if k == 2:
            r = 1.0 / (1.0 + np.exp(-z[:, 0])) - y                 # dLoss/dz
            gw, gb = coef[0] + SETTINGS["C"] * (r @ xd), SETTINGS["C"] * r.sum()
        else:
            p = np.exp(z - z.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
            p[np.arange(len(y)), y] -= 1.0
            gw, gb = coef + SETTINGS["C"] * (p.T @ xd), SETTINGS["C"] * p.sum(0)
        grad = max(np.abs(gw).max(), np.abs(gb).max())
        # And a nudge in any direction raises it (a minimum, not just a stationary point).
        nudged = min(objective(x, y, coef + 1e-3 * d, intercept, k, SETTINGS["C"])
                     for d in np.random.default_rng(1).standard_normal((8,) + coef.shape))
        assert grad < 1e-6 and nudged > obj, (grad, nudged, obj)
        test_acc = float((proba.argmax(1) == test_y).mean())
        train_acc = float((clf.predict(xd) == y).mean())
        print(f"{case} ({dataset}, {k} classes): n={len(y)} d={x.shape[1]} iterations={int(clf.n_iter_.max())} "
              f"objective={obj:.10f} max|gradient|={grad:.2e} train acc={train_acc:.3f} "
              f"held-out acc={test_acc:.3f} sum(intercept)={intercept.sum():+.3e} "
              f"max|sum over classes of coef|={np.abs(coef.sum(0)).max() if k > 2 else float('nan'):.2e}")
        exact[f"{case}.objective"] = repr(obj)
        tensors.update({
            f"{case}.train_x": x,
            f"{case}.train_y": y.astype(np.float32),
            f"{case}.coef": coef.astype(np.float32),
            f"{case}.intercept": intercept.astype(np.float32),
            f"{case}.test_x": tx,
            f"{case}.test_proba": proba.astype(np.float32),
            f"{case}.objective": np.array([obj], dtype=np.float32),
        })
    meta = {
        "sklearn": sklearn.__version__, "torch": torch.__version__,
        "transformers": transformers.__version__, "numpy": np.__version__,
        "estimator": "LogisticRegression(" + ", ".join(f"{k}={v!r}" for k, v in SETTINGS.items()) + ")",
        "objective.binary": "1/2 ||w||^2 + C * sum log(1 + exp(-s (w.x + b))), coef [1,d], intercept unpenalised",
        "objective.multi": "1/2 ||W||_F^2 + C * sum -log softmax(W x + b)[y], coef [C,d], intercept unpenalised",
        "features": f"mean of last hidden layer over attention-mask tokens, L2-normalised, max length {MAX_LENGTH}",
        "cases": ", ".join(f"{c}={d}" for c, d in CASES),
        **exact,  # the objectives at full float64 precision (the tensors hold them rounded to F32)
        "seed": str(SEED), "per_class": str(PER_CLASS), "held_out": f"{HELD_OUT} from dev.jsonl",
    }
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, OUT, metadata=meta)
    print(f"wrote {os.path.relpath(OUT, ROOT)} ({os.path.getsize(OUT)} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()

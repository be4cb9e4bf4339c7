#!/usr/bin/env python3
"""SetFit as an OUTSIDE reference on the exact few-shot samples of a `csslm experiment`.

Not part of csslm: it runs the SetFit library (Tunstall et al. 2022; pip `setfit`, 1.x) on the same
model files, the same few-shot training examples and the same dev/test files as the csslm runs of
an experiment, and writes its results beside them in csslm's own RunResult shape, so the results
table can show it as a row (marked as an outside reference by the table, not by the file).

Usage:
  python3 scripts/reference_setfit.py --experiment runs/experiment [--datasets a,b] [--samples N]
                                      [--skip-existing] [--num-iterations 20] [--max-length L]
  Run it with any python3 >= 3.9: when setfit is not importable it creates .venv-setfit (once;
  git-ignored) with pinned versions (below; torch is the CPU wheel 2.13.0+cpu) and re-runs itself
  there. On a shared machine: nice -n 10 python3 scripts/reference_setfit.py ...

Input: EXP/<dataset>/<method>/sample-<i>/ as `csslm experiment` lays it out; every run folder
holds fewshot_sample.jsonl (one draw a line: index, label NAME, line, replacement, seed, text) and
config.json (the run's TrainConfig: data, model, devLimit, testLimit, maxLength, sampleSeed). For
each dataset and sample i, the fewshot_sample.jsonl of every method's sample-i run must be
identical (checked; it is an error otherwise), as must their data, model, devLimit and maxLength.

Output: EXP/<dataset>/setfit/sample-<i>/result.json, exactly csslm's RunResult JSON
  {"method": "setfit", "dataset": <folder name of config.data>, "sampleSeed": i, "bestEpoch": 1,
   "dev": {"accuracy", "macroF1", "confusion"}, "test": {...}, "steps": <embedding steps>,
   "seconds": <wall seconds: model load + training + both evaluations>}
  (confusion[true][predicted]; macroF1 = sklearn f1_score(average="macro") over all classes of
  labels.txt, a class never predicted nor present counting 0, as csslm's ClassificationMetrics);
  and setfit_info.json beside it: versions, every setting, the sample's source, evaluation sizes.
  Test = the FULL test.jsonl (the run's testLimit is ignored and recorded); dev = the first
  devLimit lines of dev.jsonl when devLimit > 0, else all of it (as csslm selects on dev).

SetFit 1.x settings (names from setfit.TrainingArguments, checked against 1.2.0's docs/signature):
  batch_size=16 (embedding phase; default (16, 2), the 2 only for a differentiable head)
  num_epochs=1 (embedding phase; default (1, 16), the 16 only for a differentiable head)
  num_iterations=20: 20 positive and 20 negative pairs per training sentence (2*20*n pairs, e.g.
      1,280 pairs = 80 steps for 32 examples). This is the value of the SetFit paper, its README
      examples and of the 0.x SetFitTrainer default. NOTE: setfit 1.x's TrainingArguments default
      is num_iterations=None with sampling_strategy="oversampling" (all unique pairs, the minority
      of positive/negative pairs oversampled); --num-iterations 0 runs that instead.
  body_learning_rate=2e-5 (embedding phase; default (2e-5, 1e-5)), warmup_proportion=0.1,
  loss=CosineSimilarityLoss (contrastive pairs: cosine target 1 same label, 0 different),
  head: sklearn LogisticRegression() with sklearn's defaults (SetFitModel's default head),
  end_to_end=False, l2_weight=0.01 (unused by the sklearn head), seed=42, use_amp=False.
  Only run-keeping settings differ from the defaults: report_to="none", save_strategy="no",
  show_progress_bar=False, output_dir in a temporary folder. Embedding batches of 16 pairs = 32
  sentences; `steps` in result.json is the embedding phase's optimiser steps.
The model: a SentenceTransformer built from the local HF folder (config.model of the runs), not the
hub: Transformer (max_seq_length = the runs' maxLength, so SetFit sees the same truncated inputs as
csslm; --max-length overrides) + mean Pooling over real tokens + Normalize, i.e. the module stack
of sentence-transformers/all-MiniLM-L6-v2 itself. HF_HUB_OFFLINE=1: nothing is downloaded.
Threads: torch's default (all cores). Time: 80 steps + evaluation for a 32-example RT sample took
935 s on 2 cores shared with other jobs (load 6-9); an idle 2-core machine should need about a third.
"""
import argparse
import json
import os
import subprocess
import sys
import time
import warnings

warnings.filterwarnings("ignore", message=".*pin_memory.*")  # CPU only: nothing to pin
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".venv-setfit")
# Tested together (2.13.0+cpu is the CPU wheel of the pinned torch).
PINS = ["torch==2.13.0+cpu", "setfit==1.2.0", "sentence-transformers==6.3.0", "transformers==5.24.0",
        "scikit-learn==1.9.1", "datasets==5.2.0"]
METHOD = "setfit"

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")
os.environ.setdefault("TQDM_DISABLE", "1")  # the per-step progress bars of the trainers


def ensure_setfit():
    """Re-runs this script inside .venv-setfit when setfit is not importable here."""
    try:
        import setfit  # noqa: F401
        return
    except ImportError:
        pass
    python = os.path.join(VENV, "bin", "python")
    if os.path.abspath(sys.executable) == os.path.abspath(python):
        sys.exit(f"{python} exists but cannot import setfit; delete {VENV} and run again")
    if not os.path.exists(python):
        print(f"[setfit] creating {os.path.relpath(VENV, ROOT)} with {' '.join(PINS)} (once; log /tmp/csslm-setfit-pip.log)",
              flush=True)
        with open("/tmp/csslm-setfit-pip.log", "w") as log:
            if subprocess.call([sys.executable, "-m", "venv", VENV], stdout=log, stderr=log) != 0 or \
               subprocess.call([python, "-m", "pip", "install", *PINS], stdout=log, stderr=log) != 0:
                sys.exit("[setfit] could not create the venv; see /tmp/csslm-setfit-pip.log")
    os.execv(python, [python, os.path.abspath(__file__), *sys.argv[1:]])


def read_jsonl(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    sys.exit(f"{path}:{n}: not JSON ({e})")
    return rows


def read_labels(folder):
    with open(os.path.join(folder, "labels.txt"), encoding="utf-8") as f:
        names = [line.strip() for line in f]
    while names and not names[-1]:
        names.pop()
    return names


def label_index(value, labels, where):
    """A record's label (a name of labels.txt, or its index) as a class index."""
    if isinstance(value, bool):
        sys.exit(f"{where}: label {value!r} is neither a name nor an index")
    if isinstance(value, int):
        if 0 <= value < len(labels):
            return value
    elif isinstance(value, str) and value.strip() in labels:
        return labels.index(value.strip())
    sys.exit(f"{where}: label {value!r} is not one of {labels}")


def resolve(path):
    """A config path as csslm resolves it (the working directory), else from the repo root."""
    if os.path.isabs(path) or os.path.exists(path):
        return os.path.abspath(path)
    return os.path.join(ROOT, path)


def plan(experiment, datasets, samples):
    """[(dataset, sample, run folders, config)] for every dataset/sample with csslm runs."""
    found = sorted(d for d in os.listdir(experiment) if os.path.isdir(os.path.join(experiment, d)))
    if datasets:
        missing = [d for d in datasets if d not in found]
        if missing:
            sys.exit(f"{experiment}: no dataset folder {', '.join(missing)} (found: {', '.join(found) or 'none'})")
        found = datasets
    jobs = []
    for dataset in found:
        droot = os.path.join(experiment, dataset)
        methods = sorted(m for m in os.listdir(droot) if m != METHOD and os.path.isdir(os.path.join(droot, m)))
        indices = set()
        for m in methods:
            for s in os.listdir(os.path.join(droot, m)):
                if s.startswith("sample-") and s[7:].isdigit():
                    indices.add(int(s[7:]))
        wanted = sorted(indices) if samples is None else list(range(samples))
        for i in wanted:
            runs = [os.path.join(droot, m, f"sample-{i}") for m in methods]
            runs = [r for r in runs if os.path.exists(os.path.join(r, "fewshot_sample.jsonl"))]
            if not runs:
                if samples is not None:
                    sys.exit(f"{droot}: no method has sample-{i}/fewshot_sample.jsonl (asked for --samples {samples})")
                continue
            jobs.append((dataset, i, runs, check_runs(dataset, i, runs)))
    return jobs


def check_runs(dataset, i, runs):
    """The shared config of a sample's runs; exits when their samples or data settings differ."""
    first = None
    for r in runs:
        with open(os.path.join(r, "fewshot_sample.jsonl"), "rb") as f:
            sample = f.read()
        with open(os.path.join(r, "config.json"), encoding="utf-8") as f:
            c = json.load(f)
        key = {k: c.get(k, d) for k, d in (("data", "assets/data/rotten_tomatoes"), ("model", "assets/models/all-MiniLM-L6-v2"),
                                           ("devLimit", 0), ("maxLength", 64), ("sampleSeed", 0))}
        if first is None:
            first = (r, sample, key, c)
            continue
        if sample != first[1]:
            sys.exit(f"{r}/fewshot_sample.jsonl differs from {first[0]}/fewshot_sample.jsonl: the runs of sample {i} "
                     "were not trained on the same examples")
        diff = [k for k in key if key[k] != first[2][k]]
        if diff:
            sys.exit(f"{r}/config.json and {first[0]}/config.json differ in {', '.join(diff)}")
    r, _, key, c = first
    if os.path.basename(os.path.normpath(key["data"])) != dataset:
        sys.exit(f"{r}/config.json: data {key['data']!r} is not a dataset named {dataset!r}")
    if int(key["sampleSeed"]) != i:
        sys.exit(f"{r}/config.json: sampleSeed {key['sampleSeed']} in folder sample-{i}")
    return {**key, "testLimit": c.get("testLimit", 0), "sample_file": os.path.join(r, "fewshot_sample.jsonl"),
            "runs": [os.path.relpath(x, os.path.dirname(os.path.dirname(r))) for x in runs]}


def metrics(pred, gold, classes):
    """csslm's ClassificationMetrics (accuracy, macroF1, confusion[true][predicted])."""
    from sklearn.metrics import accuracy_score, f1_score
    confusion = [[0] * classes for _ in range(classes)]
    for p, y in zip(pred, gold):
        confusion[y][p] += 1
    return {"accuracy": float(accuracy_score(gold, pred)) if gold else 0.0,
            "macroF1": float(f1_score(gold, pred, labels=list(range(classes)), average="macro", zero_division=0)),
            "confusion": confusion}


def estimate(jobs, args):
    """Rough seconds for the jobs on an otherwise idle machine: ~3 s per 16-pair step and ~60
    sentences/s of evaluation at 64 tokens on 2 cores (estimated; with other work on the machine
    it is several times more), scaled by max length and core count."""
    total = 0.0
    for _, _, _, c in jobs:
        n = sum(1 for _ in open(c["sample_file"], encoding="utf-8") if _.strip())
        steps = steps_for(n, args.num_iterations)
        data = resolve(c["data"])
        dev = sum(1 for _ in open(os.path.join(data, "dev.jsonl"), encoding="utf-8") if _.strip())
        dev = min(dev, c["devLimit"]) if c["devLimit"] > 0 else dev
        test = sum(1 for _ in open(os.path.join(data, "test.jsonl"), encoding="utf-8") if _.strip())
        scale = (args.max_length or c["maxLength"]) / 64 * 2 / max(1, min(os.cpu_count() or 1, 16))
        total += 15 + scale * (3.0 * steps + (dev + test + n) / 60)
    return total


def steps_for(n, iterations):
    """Embedding steps: 2 * iterations * n pairs in batches of 16 (oversampling: ~all n(n-1)/2 pairs)."""
    pairs = 2 * iterations * n if iterations and iterations > 0 else n * (n - 1) // 2
    return -(-pairs // 16)


def run_one(dataset, i, c, args, out):
    import numpy as np
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.normalize import Normalize
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling
    from setfit import SetFitModel, Trainer, TrainingArguments
    from sklearn.linear_model import LogisticRegression
    import tempfile

    started = time.time()
    data = resolve(c["data"])
    labels = read_labels(data)
    sample = read_jsonl(c["sample_file"])
    train_text = [r["text"] for r in sample]
    train_y = [label_index(r["label"], labels, c["sample_file"]) for r in sample]
    dev = read_jsonl(os.path.join(data, "dev.jsonl"))
    if c["devLimit"] > 0:
        dev = dev[:c["devLimit"]]
    test = read_jsonl(os.path.join(data, "test.jsonl"))
    max_length = args.max_length or c["maxLength"]

    body = None
    word = Transformer(resolve(c["model"]), max_seq_length=max_length)
    pool = Pooling(word.get_embedding_dimension() if hasattr(word, "get_embedding_dimension")
                   else word.get_word_embedding_dimension(), pooling_mode="mean")
    body = SentenceTransformer(modules=[word, pool, Normalize()], device="cpu")
    model = SetFitModel(model_body=body, model_head=LogisticRegression(), labels=labels)
    with tempfile.TemporaryDirectory(prefix="csslm-setfit-") as tmp:
        targs = TrainingArguments(
            output_dir=tmp, batch_size=16, num_epochs=1,
            num_iterations=args.num_iterations if args.num_iterations > 0 else None,
            body_learning_rate=2e-5, seed=args.seed, report_to="none", save_strategy="no",
            show_progress_bar=False)
        trainer = Trainer(model=model, args=targs,
                          train_dataset=Dataset.from_dict({"text": train_text, "label": train_y}))
        trainer.train()
        steps = int(trainer.st_trainer.state.global_step)

    def predict(rows):
        texts = [r["text"] for r in rows]
        p = model.predict(texts, batch_size=64, use_labels=False)
        return [int(x) for x in (p.cpu().numpy() if isinstance(p, torch.Tensor) else np.asarray(p))]

    dev_y = [label_index(r["label"], labels, f"{data}/dev.jsonl") for r in dev]
    test_y = [label_index(r["label"], labels, f"{data}/test.jsonl") for r in test]
    dev_m = metrics(predict(dev), dev_y, len(labels))
    test_m = metrics(predict(test), test_y, len(labels))
    seconds = time.time() - started
    result = {"method": METHOD, "dataset": os.path.basename(os.path.normpath(c["data"])), "sampleSeed": i,
              "bestEpoch": 1, "dev": dev_m, "test": test_m, "steps": steps, "seconds": seconds}
    os.makedirs(out, exist_ok=True)
    import importlib.metadata as md
    info = {
        "reference": "outside (SetFit library, not csslm)",
        "versions": {p: md.version(p) for p in ("setfit", "sentence-transformers", "transformers", "torch",
                                                  "scikit-learn", "datasets", "numpy")},
        "python": sys.version.split()[0],
        "settings": {"batch_size": 16, "num_epochs": 1,
                     "num_iterations": args.num_iterations if args.num_iterations > 0 else None,
                     "sampling_strategy": targs.sampling_strategy if args.num_iterations <= 0
                     else "unused (num_iterations set)",
                     "body_learning_rate": 2e-5,
                     "warmup_proportion": targs.warmup_proportion, "loss": targs.loss.__name__,
                     "head": "sklearn LogisticRegression() defaults", "end_to_end": targs.end_to_end,
                     "seed": args.seed, "max_seq_length": max_length, "pooling": "mean + Normalize",
                     "torch_threads": torch.get_num_threads()},
        "model": c["model"], "data": c["data"], "sample": os.path.relpath(c["sample_file"], out),
        "same_sample_as": c["runs"], "train_examples": len(train_text),
        "dev_examples": len(dev), "test_examples": len(test),
        "devLimit": c["devLimit"], "testLimit_of_runs_ignored": c["testLimit"],
    }
    # result.json last: its presence marks a finished run (--skip-existing).
    for name, obj in (("setfit_info.json", info), ("result.json", result)):
        tmp = os.path.join(out, name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, os.path.join(out, name))
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--experiment", required=True, help="the experiment folder (EXP/<dataset>/<method>/sample-<i>)")
    ap.add_argument("--datasets", default="", help="comma-separated dataset folders (default: all found)")
    ap.add_argument("--samples", type=int, default=None, help="samples 0..N-1 (default: every sample found)")
    ap.add_argument("--skip-existing", action="store_true", help="keep setfit runs that have a result.json")
    ap.add_argument("--num-iterations", type=int, default=20,
                    help="pair iterations per sentence (default 20; 0 = setfit 1.x's oversampling default)")
    ap.add_argument("--max-length", type=int, default=0, help="token limit (default: the runs' maxLength)")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    if not os.path.isdir(args.experiment):
        sys.exit(f"{args.experiment}: no such experiment folder")
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    jobs = plan(args.experiment, datasets, args.samples)
    if not jobs:
        sys.exit(f"{args.experiment}: no <dataset>/<method>/sample-<i>/fewshot_sample.jsonl found")
    ensure_setfit()  # only now: a plan that fails should fail before the venv is made
    todo = []
    for dataset, i, runs, c in jobs:
        out = os.path.join(args.experiment, dataset, METHOD, f"sample-{i}")
        if args.skip_existing and os.path.exists(os.path.join(out, "result.json")):
            print(f"[setfit] {out}: kept (result.json exists)")
            continue
        todo.append((dataset, i, runs, c))
    import torch
    torch.manual_seed(args.seed)
    est = estimate(todo, args)
    print(f"[setfit] {len(todo)} run(s) to do ({len(jobs) - len(todo)} kept), estimated {est / 60:.1f} min "
          f"if the machine's {os.cpu_count()} cores were idle ({torch.get_num_threads()} torch threads; "
          f"load average now {os.getloadavg()[0]:.1f})", flush=True)
    started = time.time()
    for k, (dataset, i, runs, c) in enumerate(todo):
        out = os.path.join(args.experiment, dataset, METHOD, f"sample-{i}")
        print(f"[setfit] {k + 1}/{len(todo)} {out} (sample from {len(runs)} run(s), identical)", flush=True)
        r = run_one(dataset, i, c, args, out)
        left = (time.time() - started) / (k + 1) * (len(todo) - k - 1)
        print(f"[setfit] {dataset} sample {i}: test acc {r['test']['accuracy']:.4f} macro-F1 {r['test']['macroF1']:.4f}, "
              f"dev acc {r['dev']['accuracy']:.4f}, {r['steps']} steps, {r['seconds']:.0f} s"
              + (f"; ~{left / 60:.0f} min left" if left > 0 else ""), flush=True)
    print(f"[setfit] done in {(time.time() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()

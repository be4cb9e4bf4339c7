#!/usr/bin/env python3
"""Checks that `csslm export` writes a folder Hugging Face transformers loads to the same encoder.

A dev tool (CI does not run it: it needs torch and transformers). It exports CHECKPOINT with the
csslm binary, asks csslm for the last hidden states of a few sentences through the exported folder
(`csslm export --encode ... --hidden-out ...`), then loads the same folder with
transformers.AutoModel / AutoTokenizer and compares:
  - the token ids (HF's tokenizer on the exported tokenizer files vs csslm's WordPiece),
  - the last hidden states at every real token: max |diff| / max |ref| <= 1e-4
    (docs/design.md#reference-parity),
  - that heads.safetensors holds the classifier head.

Run (after `swift build -c release ...`; the venv needs torch, transformers, safetensors):

    /work/.venv-ref/bin/python scripts/check_export.py RUN/checkpoints/step-N
    /work/.venv-ref/bin/python scripts/check_export.py RUN            # newest complete checkpoint

Without a training run at hand, a checkpoint of the real MiniLM (weights nudged) comes from
the checkpoint scenario:

    .build/release/csslm-mpitest checkpoint-loop --single --run /tmp/minilm-run --steps 1 \
        --model assets/models/all-MiniLM-L6-v2
    /work/.venv-ref/bin/python scripts/check_export.py /tmp/minilm-run

Exit status 0 when everything matches, 1 otherwise.
"""
import argparse
import os
import subprocess
import sys
import tempfile

SENTENCES = [
    "The film is a charming, funny and heartfelt look at growing up.",
    "An utterly predictable plot, wooden acting and a script that never finds its rhythm.",
    "Shares in the company rose 4% after it reported record quarterly profits.",
    "I can't believe how good this was!!! 10/10 would watch again :)",
    "Unaffable naïveté: résumé of a café owner's déjà vu.",
    "short",
]


def main() -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="checkpoint folder (RUN/checkpoints/step-N) or run folder")
    parser.add_argument("--csslm", default=os.path.join(root, ".build/release/csslm"), help="the csslm binary")
    parser.add_argument("--out", help="export folder (default: a temporary one)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max relative difference of hidden states")
    args = parser.parse_args()

    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or os.path.join(tmp, "export")
        sentences = os.path.join(tmp, "sentences.txt")
        hidden_file = os.path.join(tmp, "csslm_hidden.safetensors")
        with open(sentences, "w", encoding="utf-8") as f:
            f.write("\n".join(SENTENCES) + "\n")
        subprocess.run([args.csslm, "export", args.checkpoint, out, "--encode", sentences, "--hidden-out", hidden_file],
                       check=True)
        ours = load_file(hidden_file)

        tokenizer = AutoTokenizer.from_pretrained(out)
        model = AutoModel.from_pretrained(out).eval()
        ok = True

        mask = ours["attention_mask"].to(torch.int64)
        ids = ours["input_ids"].to(torch.int64)
        hf_ids = tokenizer(SENTENCES, padding=True, truncation=True, max_length=128, return_tensors="pt")["input_ids"]
        same_ids = hf_ids.shape == ids.shape and torch.equal(hf_ids * mask, ids * mask)
        print(f"token ids: {'same' if same_ids else 'DIFFERENT'} as HF's {type(tokenizer).__name__} "
              f"({int(mask.sum())} tokens in {len(SENTENCES)} sentences)")
        ok &= same_ids

        with torch.no_grad():
            ref = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
        real = mask.bool()
        diff = (ours["last_hidden_state"][real] - ref[real]).abs().max().item()
        scale = ref[real].abs().max().item()
        rel = diff / scale
        print(f"last hidden state: max|diff| {diff:.3e}, max|ref| {scale:.3f}, relative {rel:.3e} "
              f"(tolerance {args.tolerance:g})")
        ok &= rel <= args.tolerance

        heads = load_file(os.path.join(out, "heads.safetensors"))
        has_classifier = any(name.startswith("classifier.") for name in heads)
        print(f"heads.safetensors: {', '.join(f'{k} {list(v.shape)}' for k, v in sorted(heads.items()))}")
        ok &= has_classifier

    print("OK: transformers loads the export and agrees with csslm" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

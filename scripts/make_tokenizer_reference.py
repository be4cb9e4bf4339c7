#!/usr/bin/env python3
"""Writes Tests/CSSLMTests/Fixtures/tokenizer_parity.jsonl: token ids from HF's BertTokenizer.

Dev-time only (CI reads the committed fixture). The reference is transformers' Python
tokenizer (`BertTokenizerLegacy` in transformers 5, the classic slow `BertTokenizer` before);
every case is also run through the Rust-backed fast tokenizer (`BertTokenizer` in transformers 5,
`tokenizers` WordPiece), and where the two disagree the fast ids are kept too, as `fast_ids`, and
counted in the summary.

Cases: hand-made hard cases (accents, CJK, emoji, URLs, zero-width and non-breaking spaces,
control characters, words over 100 characters, empty and blank lines, mixed scripts, combining
marks, special tokens in the text, pairs with truncation) and real sentences drawn, with a fixed
seed, from every dataset in assets/data/<name>/{train,dev,test}.jsonl (long texts cut into
sentences, plus a few whole documents truncated to 512 tokens) and every unlabelled corpus file
assets/corpus/*.txt (one sentence a line), and pairs of those sentences; falling back to the model's README and Debian's licence texts when
assets/data does not exist yet.

The first line is {"meta": {...}} with the library versions and Python's Unicode version (the
Swift test treats scalars assigned after it as unassigned, as Python does).

Set-up (a venv outside the repository; no PyTorch needed):
    python3 -m venv /work/.venv-ref
    /work/.venv-ref/bin/pip install "transformers==5.24.0" "tokenizers==0.23.3"
    /work/.venv-ref/bin/python scripts/make_tokenizer_reference.py
"""
import argparse
import glob
import json
import os
import random
import re
import sys
import unicodedata

import tokenizers
import transformers
from transformers import BertTokenizer

try:  # transformers >= 5: the Python implementation lives on as BertTokenizerLegacy
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy as SlowBertTokenizer
except ImportError:  # transformers 4: BertTokenizer is the Python one
    SlowBertTokenizer = BertTokenizer
    from transformers import BertTokenizerFast as BertTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (text, pair, max_length, add_special_tokens)
HAND_CASES = [
    ("", None, None, True),
    ("   \t\n  ", None, None, True),
    ("\u3000\u00a0\u2028\u2029", None, None, True),
    ("Hello, world!", None, None, True),
    ("The quick brown fox jumps over the lazy dog.", None, None, True),
    ("unaffable unbelievably antidisestablishmentarianism", None, None, True),
    # accents, precomposed and decomposed, combining marks alone
    ("Café naïve résumé Ångström Ærøskøbing São Paulo Zürich façade coöperate", None, None, True),
    ("Cafe\u0301 nai\u0308ve re\u0301sume\u0301 A\u030angstro\u0308m", None, None, True),
    ("\u0301\u0302 x \u0301 e\u0301\u0302\u0323", None, None, True),
    ("Tiếng Việt có dấu, Ελληνικά με τόνους, Français élève, Español año, Čeština řeč", None, None, True),
    ("Z̴̡̪a̶l̷g̶o̸ t̷e̸x̵t̴", None, None, True),
    # CJK and other East Asian scripts
    ("我爱北京天安门。他说：“你好！”", None, None, True),
    ("日本語のテキスト、カタカナとひらがな。がぎぐげご", None, None, True),
    ("한국어 텍스트 안녕하세요", None, None, True),
    ("compat \uf900\ufa0e\ufa6d ext-B \U00020000\U0002a6d6 supplement \U0002f800 radicals ⺀⼀", None, None, True),
    ("mixed中文English混合text", None, None, True),
    # emoji
    ("I love it 😀👍🏽 👨‍👩‍👧 ❤️ 🇫🇷 🥰🤖", None, None, True),
    ("emoji-only 🙂🙂🙂", None, None, True),
    ("newer emoji \U0001FAE8 \U0001FA77 \U0001F6DD", None, None, True),
    # URLs, e-mail, hashtags
    ("See https://www.example.com/path/to/page?q=1&x=y#frag or http://t.co/AbC123xyz", None, None, True),
    ("mail me: first.last+tag@example.org, @user #HashTag $AAPL", None, None, True),
    # zero-width, non-breaking and other spaces
    ("zero\u200bwidth\u200cnon\u200djoiner\u2060word\ufeffbom\u00adsoft\u200ehyphen", None, None, True),
    ("non\u00a0breaking\u202fnarrow\u2007figure\u3000ideographic\u2003em\u1680ogham", None, None, True),
    ("line\u2028separator and paragraph\u2029separator", None, None, True),
    # control characters
    ("tab\tnew\nline\rcarriage\x00nul\x07bell\x1bescape\x7fdel\x85nel\ufffdreplacement\x0bvt\x0cff", None, None, True),
    ("\x01\x02\x03", None, None, True),
    ("private \ue000\U000f0000 use, tag \U000e0041, unassigned \U000e0080 \U0010fffd", None, None, True),
    # very long words (limit: 100 scalars after normalization)
    ("a" * 100, None, None, True),
    ("a" * 101, None, None, True),
    ("supercalifragilistic" * 6 + " short", None, None, True),
    ("é" * 100 + " " + "é" * 101, None, None, True),
    ("e\u0301" * 60, None, None, True),
    ("x" * 99 + "," + "y" * 99, None, None, True),
    ("pneumonoultramicroscopicsilicovolcanoconiosis hippopotomonstrosesquippedaliophobia", None, None, True),
    # mixed scripts, RTL, Indic, Thai
    ("Hello мир κόσμε العالم שלום नमस्ते สวัสดี ሰላም Բարեւ გამარჯობა", None, None, True),
    ("مَرْحَبًا بِكُمْ — שָׁלוֹם — नमस्ते दुनिया — สวัสดีครับ", None, None, True),
    ("Привет, как дела? ЁЛКА ёлка Їжак", None, None, True),
    # casing corner cases
    ("ΟΔΟΣ ΟΔΟΣ. ΣΑΣ Σ ΑΣ' ΑΣΑ ΌΣΟΣ-ΌΣΟΣ Σ.", None, None, True),
    ("İSTANBUL ıstanbul DİYARBAKIR", None, None, True),
    ("ﬁne ﬂow ﬀ ß ẞ STRASSE ǅ ǈ Ⅻ ⅻ ＡＢＣ１２３！ 𝐀𝐁𝐂", None, None, True),
    ("Kelvin \u212a Angstrom \u212b Ohm \u2126 greek question\u037e ano\u0387teleia", None, None, True),
    # numbers and punctuation
    ("3.14159 1,000,000 $5.99 -42 +7 10% 2nd 1/2 ½ ² 12:30pm 2021-03-04 (555) 123-4567", None, None, True),
    ("Wait... what?! (yes) [no] {maybe} <tag> \"quoted\" 'single' `back` ~tilde^caret |pipe| \\ @ # & * _under_score_", None, None, True),
    ("“curly” ‘quotes’ — em–en dash … ellipsis « guillemets » ¿Qué? ¡Hola! · • ‰ § ¶ † ※", None, None, True),
    ("© ® ™ ° € £ ¥ ∑ √ ∞ ≤ ≠ ± × ÷ ← → ♥ ★", None, None, True),
    ("don't can't won't it's y'all rock'n'roll O'Neill", None, None, True),
    # special tokens written in the text
    ("[CLS] [SEP] [PAD] [UNK] [MASK]", None, None, True),
    ("x[MASK]y [mask] lowercase [Mask] [CLS][SEP]", None, None, True),
    ("[CL\u200bS] kept whole after cleaning; [ UNK ]", None, None, True),
    # pairs and truncation
    ("How old are you?", "I am six years old.", None, True),
    ("a b c d e f g", "h i j k", 8, True),
    ("a b c d e", "f g h i j", 8, True),
    ("a b c d e", "f g h i j", 7, True),
    ("one two three", "four five six seven eight nine ten", 7, True),
    ("one two three four five six seven eight", "nine ten", 9, True),
    ("short", "pair", 3, True),
    ("short text", "pair text here", 4, True),
    ("this single sentence is long enough to be truncated", None, 6, True),
    ("this single sentence is long enough to be truncated", None, 2, True),
    ("no special tokens here", None, None, False),
    ("no special tokens", "in a pair", None, False),
    ("no special tokens truncated", "in a pair too", 4, False),
    ("", "only the second text", None, True),
    ("only the first text", "", None, True),
    ("Café 中文 😀", "ΟΔΟΣ [MASK] https://x.y/z", 10, True),
]


SENTENCE_END = re.compile(r"(?<=[.!?])[\"\u201d']?\s+(?=[\"\u201c'(]?[A-Z0-9])")


def sentences_of(text):
    """A long text (a news article is one line) cut into sentences; short texts stay whole."""
    if len(text) <= 400:
        return [text]
    return [s for s in SENTENCE_END.split(text) if s.strip()]


def sample_lines(path, k, rng):
    """k non-empty lines of a (possibly large) text file, uniformly, in one pass (reservoir)."""
    picked = []
    n = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            n += 1
            if len(picked) < k:
                picked.append(line)
            else:
                j = rng.randrange(n)
                if j < k:
                    picked[j] = line
    return picked


def real_texts(data_dir, corpus_dir, per_dataset, per_corpus, whole, seed):
    """(source, text) samples: sentences from every labelled dataset under data_dir (all splits),
    a few whole long documents per dataset (encoded truncated to 512), and lines of every corpus
    file under corpus_dir."""
    rng = random.Random(seed)
    out = []
    for ds in sorted(glob.glob(os.path.join(data_dir, "*"))):
        if not os.path.isdir(ds):
            continue
        texts = []
        for path in sorted(glob.glob(os.path.join(ds, "*.jsonl"))):
            with open(path, encoding="utf-8") as f:
                texts.extend(json.loads(line)["text"] for line in f if line.strip())
        if not texts:
            continue
        name = os.path.basename(ds)
        units = [u for t in texts for u in sentences_of(t)]
        out.extend((name, t) for t in rng.sample(units, min(per_dataset, len(units))))
        long_docs = [t for t in texts if len(t) > 400]
        out.extend((name + ":whole", t) for t in rng.sample(long_docs, min(whole, len(long_docs))))
    for path in sorted(glob.glob(os.path.join(corpus_dir, "*.txt"))):
        name = "corpus/" + os.path.basename(path)[:-4]
        out.extend((name, t) for t in sample_lines(path, per_corpus, rng))
    return out


def fallback_texts(model_dir):
    """Real English prose available on any Debian machine, until assets/data exists."""
    out = []
    readme = os.path.join(model_dir, "README.md")
    paths = ([readme] if os.path.exists(readme) else []) + sorted(glob.glob("/usr/share/common-licenses/*"))
    for path in paths:
        if os.path.isdir(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            paragraphs = re.split(r"\n\s*\n", f.read())
        name = os.path.basename(path)
        out.extend(("fallback:" + name, p) for p in paragraphs if p.strip())
    return out


def encode(tok, text, pair, max_length, add_special):
    kwargs = dict(add_special_tokens=add_special, return_token_type_ids=True)
    if max_length is not None:
        kwargs.update(truncation="longest_first", max_length=max_length)
    enc = tok(text, pair, **kwargs) if pair is not None else tok(text, **kwargs)
    return enc["input_ids"], enc["token_type_ids"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "assets/models/all-MiniLM-L6-v2"))
    ap.add_argument("--data", default=os.path.join(ROOT, "assets/data"))
    ap.add_argument("--out", default=os.path.join(ROOT, "Tests/CSSLMTests/Fixtures/tokenizer_parity.jsonl"))
    ap.add_argument("--corpus", default=os.path.join(ROOT, "assets/corpus"))
    ap.add_argument("--per-dataset", type=int, default=700, help="real sentences drawn from each dataset")
    ap.add_argument("--per-corpus", type=int, default=200, help="lines drawn from each corpus file")
    ap.add_argument("--whole", type=int, default=4, help="whole long documents per dataset (truncated to 512)")
    ap.add_argument("--pairs", type=int, default=150, help="real sentence pairs with truncation")
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()

    import logging
    transformers.logging.set_verbosity_error()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    slow = SlowBertTokenizer.from_pretrained(args.model)
    fast = BertTokenizer.from_pretrained(args.model)
    assert not getattr(slow, "is_fast", False) and fast.is_fast

    cases = [dict(source="hand", text=t, pair=p, max_length=m, add_special_tokens=a) for t, p, m, a in HAND_CASES]
    real = real_texts(args.data, args.corpus, args.per_dataset, args.per_corpus, args.whole, args.seed)
    if not real:
        print(f"note: no datasets in {args.data}; using fallback English text", file=sys.stderr)
        real = fallback_texts(args.model)
    for source, text in real:
        whole = source.endswith(":whole")
        cases.append(dict(source=source, text=text, pair=None, max_length=512 if whole else None,
                          add_special_tokens=True))
    rng = random.Random(args.seed + 1)
    sentences = [t for s, t in real if not s.endswith(":whole")]
    for _ in range(min(args.pairs, len(sentences) // 2)):
        a, b = rng.sample(sentences, 2)
        cases.append(dict(source="pair", text=a, pair=b, max_length=rng.choice([16, 24, 32, 48, 64, 128]),
                          add_special_tokens=True))

    disagreements = []
    rows = []
    for c in cases:
        ids, types = encode(slow, c["text"], c["pair"], c["max_length"], c["add_special_tokens"])
        row = dict(source=c["source"], text=c["text"])
        if c["pair"] is not None:
            row["pair"] = c["pair"]
        row.update(max_length=c["max_length"], add_special_tokens=c["add_special_tokens"], ids=ids,
                   token_type_ids=types, tokens=slow.convert_ids_to_tokens(ids))
        try:
            fast_ids, fast_types = encode(fast, c["text"], c["pair"], c["max_length"], c["add_special_tokens"])
        except Exception as e:  # noqa: BLE001 - record whatever the fast tokenizer does
            fast_ids, fast_types = None, repr(e)
        if fast_ids != ids or fast_types != types:
            row["fast_ids"] = fast_ids
            row["fast_token_type_ids"] = fast_types
            disagreements.append(row)
        rows.append(row)

    sources = {}
    for r in rows:
        key = r["source"]
        sources[key] = sources.get(key, 0) + 1
    meta = dict(
        model=os.path.basename(os.path.normpath(args.model)),
        transformers=transformers.__version__,
        tokenizers=tokenizers.__version__,
        python=sys.version.split()[0],
        unicode_version=unicodedata.unidata_version,
        reference="transformers BertTokenizerLegacy (Python)",
        cases=len(rows),
        cases_by_source=sources,
        slow_fast_disagreements=len(disagreements),
    )
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(json.dumps({"meta": meta}, ensure_ascii=False) + "\n")
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n")
    size = os.path.getsize(args.out)
    print(f"wrote {args.out}: {len(rows)} cases, {size / 1e6:.2f} MB; by source: {sources}")
    print(f"slow/fast disagreements: {len(disagreements)}")
    for r in disagreements[:20]:
        print("  ", json.dumps(r["text"][:80], ensure_ascii=False), "pair" if "pair" in r else "",
              "slow", r["tokens"][:12], "fast", r["fast_ids"] if r["fast_ids"] is None else fast.convert_ids_to_tokens(r["fast_ids"])[:12])


if __name__ == "__main__":
    main()

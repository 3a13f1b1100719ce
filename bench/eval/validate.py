"""Sanity checks for the search evaluation set: python bench/eval/validate.py"""
import collections
import json
import pathlib
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
KINDS = {"keyword", "paraphrase", "question", "navigational"}


def words(text: str) -> int:
    text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)  # frontmatter does not count
    return len(text.split())


def main() -> int:
    errors = []
    pages = sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*.md"))
    for p in pages:
        n = words((CORPUS / p).read_text(encoding="utf-8"))
        if not 150 <= n <= 900:
            errors.append(f"{p}: {n} words (want 150-900)")

    queries, ids = [], set()
    for lineno, line in enumerate((HERE / "queries.jsonl").read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            q = json.loads(line)
        except json.JSONDecodeError as e:
            errors.append(f"queries.jsonl:{lineno}: {e}")
            continue
        queries.append(q)
        if q.get("id") in ids:
            errors.append(f"duplicate id {q.get('id')}")
        ids.add(q.get("id"))
        if q.get("kind") not in KINDS:
            errors.append(f"{q.get('id')}: bad kind {q.get('kind')!r}")
        rel = q.get("relevant") or {}
        if 3 not in rel.values():
            errors.append(f"{q['id']}: no page graded 3")
        for path, grade in rel.items():
            if grade not in (1, 2, 3):
                errors.append(f"{q['id']}: bad grade {grade} for {path}")
            if not (CORPUS / path).is_file():
                errors.append(f"{q['id']}: missing page {path}")

    kinds = collections.Counter(q["kind"] for q in queries)
    print(f"pages: {len(pages)}  queries: {len(queries)}  kinds: {dict(kinds)}")
    if len(pages) < 160:
        errors.append("fewer than 160 pages")
    if len(queries) < 70:
        errors.append("fewer than 70 queries")
    if kinds["paraphrase"] < 25:
        errors.append("fewer than 25 paraphrase queries")
    if kinds["keyword"] < 15:
        errors.append("fewer than 15 keyword queries")
    for e in errors:
        print("ERROR:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

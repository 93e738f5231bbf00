"""Extract the quick starts from the READMEs, as written, for tests/readme/run.sh.

A quick start is the fenced code block right after an HTML comment of the form

    <!-- quickstart: LANG[; database: PATH] (any explanation) -->

The block is written to OUT/<readme>-<LANG>.<ext> with PATH, the one thing substituted,
replaced by OUT/<readme>-<LANG>/PATH (so each block gets a database of its own); a PATH that
does not occur in the block is an error, so a marker cannot go stale. README.md must have
one quick start for each of c, ruby and python.

    python3 extract.py OUT README.md [bindings/ruby/README.md ...]

Prints one line per block: LANG FILE DATABASE (the substituted path, or - for none).
"""
import os
import re
import sys

MARKER = re.compile(r"<!--\s*quickstart:\s*(\w+)(?:;\s*database:\s*(\S+))?.*?-->\s*\n"
                    r"```(\w+)\n(.*?)\n```", re.S)
EXTENSIONS = {"c": "c", "ruby": "rb", "python": "py"}
REQUIRED = {"c", "ruby", "python"}


def main(out, readmes):
    for readme in readmes:
        with open(readme, encoding="utf-8") as f:
            text = f.read()
        name = os.path.dirname(readme).replace(os.sep, "-") or "top"
        found = set()
        for lang, path, fence, code in MARKER.findall(text):
            if lang not in EXTENSIONS or fence != lang:
                sys.exit(f"{readme}: quickstart marker for {lang!r} before a ```{fence} block")
            if lang in found:
                sys.exit(f"{readme}: two quick starts for {lang}")
            found.add(lang)
            base = os.path.join(out, f"{name}-{lang}")
            os.makedirs(base, exist_ok=True)
            database = "-"
            if path:
                if path not in code:
                    sys.exit(f"{readme}: the {lang} quick start does not contain {path!r}")
                database = os.path.join(base, path)
                code = code.replace(path, database)
            target = f"{base}.{EXTENSIONS[lang]}"
            with open(target, "w", encoding="utf-8") as f:
                f.write(code + "\n")
            print(lang, target, database)
        if os.path.basename(readme) == "README.md" and name == "top" and found != REQUIRED:
            sys.exit(f"{readme}: quick starts missing for {sorted(REQUIRED - found)}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])

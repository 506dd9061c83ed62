#!/usr/bin/env python3
"""Parse EQL queries with eql 1.0.1 in Elasticsearch syntax.

usage: eql_parse.py FILE.eql [FILE.eql ...]     (one query per file, "-" = stdin)

Each query is parsed with
    with eql.parser.elasticsearch_syntax, eql.parser.ignore_missing_functions:
        eql.parse_query(q)
Exit 0 when every query parses, 1 listing the failures, 2 on usage errors.
This checks syntax and operand types only: regex bodies, field names and
field types are not checked.
"""
import os
import sys

# eql imports every "eql_*" module on sys.path as a plugin at its first parse:
# keep this folder (eql_parse.py, eql_eval.py) off the path.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

import eql  # noqa: E402


def parse(query):
    with eql.parser.elasticsearch_syntax, eql.parser.ignore_missing_functions:
        return eql.parse_query(query)


def main(argv):
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    failures = 0
    for name in argv:
        try:
            text = sys.stdin.read() if name == "-" else open(name, encoding="utf-8").read()
        except OSError as e:
            print(f"FAIL {name}: {e}")
            failures += 1
            continue
        if not text.strip():
            print(f"FAIL {name}: empty query")
            failures += 1
            continue
        try:
            parse(text)
            print(f"OK   {name}")
        except Exception as e:  # eql 1.0.1 also raises ValueError on some escapes
            print(f"FAIL {name}: {type(e).__name__}:\n{e}")
            failures += 1
    if failures:
        print(f"eql_parse: {failures} of {len(argv)} queries failed to parse")
        return 1
    print(f"eql_parse: {len(argv)} queries parsed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

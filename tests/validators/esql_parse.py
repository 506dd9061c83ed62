#!/usr/bin/env python3
"""Parse Elasticsearch ES|QL queries with esql-parser 9.1.3 (the ANTLR grammar of
Elasticsearch 9.1.3).

usage: esql_parse.py FILE.esql [FILE.esql ...]     (one query per file, "-" = stdin)

Run with .venv/esql/bin/python. Each query is lexed and parsed from
`singleStatement` (which ends at EOF) with a strict error listener: ANTLR's
default listener only prints to stderr and recovers, here every lexer or
parser error is a failure, reported as `line L:C: message` (C counted from 1,
like Elasticsearch's own "line 1:23:" messages).
Also a failure: a token of a development-only grammar rule (symbolic name
DEV_*, e.g. `inlinestats`, `lookup_🐔`, `??`). Elasticsearch guards those with
`{this.isDevVersion()}?` (x-pack/plugin/esql/src/main/antlr/lexer/*.g4); the
Python grammar in esql-parser drops the predicates, a release build rejects them.

Prints `OK   FILE` or `FAIL FILE: ...` per file and a summary line; exit 0 when
every query parses, 1 on any failure, 2 on usage errors.
Syntax only: unknown functions, unknown fields and type errors are NOT checked
(Elasticsearch reports those at analysis time); see esql_eval.py for semantics.
"""
import sys

from antlr4 import CommonTokenStream, InputStream
from antlr4.error.ErrorListener import ErrorListener
from esql_parser.EsqlBaseLexer import EsqlBaseLexer
from esql_parser.EsqlBaseParser import EsqlBaseParser


class SyntaxErrors(ErrorListener):
    def __init__(self):
        self.errors = []

    def syntaxError(self, recognizer, offendingSymbol, line, column, msg, e):
        self.errors.append(f"line {line}:{column + 1}: {msg}")


class EsqlSyntaxError(Exception):
    pass


def parse(text):
    """Return (tree, token_stream) or raise EsqlSyntaxError with every error."""
    errors = SyntaxErrors()
    lexer = EsqlBaseLexer(InputStream(text))
    lexer.removeErrorListeners()
    lexer.addErrorListener(errors)
    tokens = CommonTokenStream(lexer)
    parser = EsqlBaseParser(tokens)
    parser.removeErrorListeners()
    parser.addErrorListener(errors)
    tree = parser.singleStatement()
    names = EsqlBaseLexer.symbolicNames
    for tok in tokens.tokens:
        if 0 < tok.type < len(names) and names[tok.type].startswith("DEV_"):
            errors.errors.append(
                f"line {tok.line}:{tok.column + 1}: '{tok.text}' is a development-only token "
                f"({names[tok.type]}), rejected by Elasticsearch release builds")
    if errors.errors:
        raise EsqlSyntaxError("\n".join(errors.errors))
    return tree, tokens


def main(argv):
    if not argv or any(a in ("-h", "--help") for a in argv):
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
        except EsqlSyntaxError as e:
            print(f"FAIL {name}: {e}")
            failures += 1
    if failures:
        print(f"esql_parse: {failures} of {len(argv)} queries failed to parse")
        return 1
    print(f"esql_parse: {len(argv)} queries parsed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

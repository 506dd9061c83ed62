#!/usr/bin/env python3
"""Evaluate one Elasticsearch EQL event query over JSON events.

usage: eql_eval.py QUERY.eql EVENTS.ndjson     ("-" = stdin for either)
       eql_eval.py --batch                     (JSON jobs on stdin, see batch())

Prints one line per event: "true" or "false". Exit 0 on success, 1 when the
query cannot be parsed or uses something this evaluator does not support.

The query is parsed by eql 1.0.1 (elasticsearch syntax). eql's own
PythonEngine cannot be used as is: its AST drops the "~" of in~/like~/regex~
and it folds case for every string comparison (classic EQL). So the parser is
hooked to keep the operator, and this small evaluator applies Elasticsearch
semantics:
  ==, !=, in, like, regex      case-sensitive
  :, in~, like~, regex~        case-insensitive
  like / like~ / :             wildcards * and ? over the whole value, \\ escapes
                               the next character (Lucene wildcard syntax); `:`
                               without * or ? is a plain case-insensitive term
  regex / regex~               whole-value match (Python re.fullmatch, DOTALL;
                               Lucene-only operators are not emulated)
  fields                       dotted path through nested objects or dotted
                               keys; an array matches if any element does
                               (!= and "not in" hold only if no element equals)
  cidrMatch(f, "net", ...)     an element of f is an IP address in one of the
                               networks
  missing field                null: a comparison with null is null, "not null"
                               is null, and a null verdict prints "false"
Only "any where ..." and "<category> where ..." (category compared with
event.category) queries; no sequences, samples or pipes.
"""
import ipaddress
import json
import os
import re
import sys

# eql imports every "eql_*" module on sys.path as a plugin at its first parse:
# keep this folder (eql_parse.py, eql_eval.py) off the path.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

import eql  # noqa: E402
from eql import ast  # noqa: E402
from eql.parser import LarkToEQL  # noqa: E402

# -- keep the operator that eql's AST would lose -----------------------------
_string_predicate, _in_set = LarkToEQL.string_predicate, LarkToEQL.in_set


def _keep_predicate(self, node):
    info = _string_predicate(self, node)
    info.node = ast.FunctionCall("$" + str(node["STRING_PREDICATE"]), info.node.arguments)
    return info


def _keep_in(self, node):
    info = _in_set(self, node)
    if node.get("IN") == "in~":
        info.node = ast.FunctionCall("$in~", [info.node.expression, *info.node.container])
    return info


# Patch once, in case this file is imported as a module as well.
if not getattr(LarkToEQL, "_detc_keeps_operators", False):
    LarkToEQL.string_predicate, LarkToEQL.in_set = _keep_predicate, _keep_in
    LarkToEQL._detc_keeps_operators = True


class Unsupported(Exception):
    pass


def parse(text):
    with eql.parser.elasticsearch_syntax, eql.parser.ignore_missing_functions, \
            eql.parser.skip_optimizations:
        return eql.parse_query(text)


# -- evaluation (three-valued: True / False / None) -----------------------------
def field(doc, base, path):
    keys = [base] + [p for p in path]
    return _lookup(doc, keys)


def _lookup(obj, keys):
    if not keys:
        return obj
    if isinstance(obj, list):
        vals = [_lookup(o, keys) for o in obj]
        flat = [x for v in vals for x in (v if isinstance(v, list) else [v]) if x is not None]
        return flat or None
    if not isinstance(obj, dict):
        return None
    for i in range(len(keys), 0, -1):  # "a.b" may be one dotted key
        k = ".".join(str(x) for x in keys[:i])
        if k in obj:
            v = _lookup(obj[k], keys[i:])
            if v is not None:
                return v
    return None


def values(v):
    return v if isinstance(v, list) else [v]


def wildcard_re(pattern, fold):
    # Lucene wildcard syntax (Elasticsearch passes `like` patterns to a
    # wildcard query as they are): `*` any run, `?` one character, `\`
    # escapes the next character; a trailing lone `\` is a literal backslash.
    rx, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            rx.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        rx.append(".*" if c == "*" else "." if c == "?" else re.escape(c))
        i += 1
    return re.compile("".join(rx), re.DOTALL | (re.IGNORECASE if fold else 0))


def same_kind(a, b):
    num = (int, float)
    return (isinstance(a, str) and isinstance(b, str)) or (
        isinstance(a, num) and isinstance(b, num)
        and not isinstance(a, bool) and not isinstance(b, bool)) or (
        isinstance(a, bool) and isinstance(b, bool))


CMP = {"==": lambda a, b: a == b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
       ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def ev(node, doc):
    if isinstance(node, ast.Literal):
        return node.value
    if isinstance(node, ast.Field):
        return field(doc, node.base, node.path)
    if isinstance(node, ast.And):
        vs = [ev(t, doc) for t in node.terms]
        return False if False in vs else (None if None in vs else True)
    if isinstance(node, ast.Or):
        vs = [ev(t, doc) for t in node.terms]
        return True if True in vs else (None if None in vs else False)
    if isinstance(node, ast.Not):
        v = ev(node.term, doc)
        return None if v is None else not v
    if isinstance(node, ast.IsNull):
        return ev(node.expr, doc) is None
    if isinstance(node, ast.IsNotNull):
        return ev(node.expr, doc) is not None
    if isinstance(node, ast.Comparison):
        left, right = ev(node.left, doc), ev(node.right, doc)
        if left is None or right is None:
            return None
        if node.comparator == "!=":
            return not any(same_kind(x, right) and x == right for x in values(left))
        return any(same_kind(x, right) and CMP[node.comparator](x, right) for x in values(left))
    if isinstance(node, ast.InSet):
        left = ev(node.expression, doc)
        if left is None:
            return None
        items = [ev(c, doc) for c in node.container]
        return any(same_kind(x, i) and x == i for x in values(left) for i in items)
    if isinstance(node, ast.FunctionCall):
        return call(node, doc)
    raise Unsupported(f"unsupported expression {type(node).__name__}: {node}")


SIMPLE = {"startswith": str.startswith, "endswith": str.endswith,
          "stringcontains": lambda s, p: p in s}
OPS = ("$:", "$like", "$like~", "$regex", "$regex~", "$in~")


def call(node, doc):
    name, args = node.name, node.arguments
    base = name.rstrip("~").lower()
    if name not in OPS and base not in SIMPLE and name != "cidrMatch":
        raise Unsupported(f"unsupported function {name}()")
    left = ev(args[0], doc)
    pats = [ev(a, doc) for a in args[1:]]
    if left is None:
        return None
    if name == "cidrMatch":  # an ip field (any element) in any of the networks
        nets = [ipaddress.ip_network(p, strict=False) for p in pats]
        addrs = []
        for x in values(left):
            try:
                addrs.append(ipaddress.ip_address(x))
            except ValueError:
                pass
        return any(a.version == n.version and a in n for a in addrs for n in nets)
    strs = [x for x in values(left) if isinstance(x, str)]
    if name == "$:" and not any("*" in p or "?" in p for p in pats if isinstance(p, str)):
        # without wildcards `:` is a case-insensitive term query: `\` is literal
        want = {p.lower() for p in pats if isinstance(p, str)}
        return any(x.lower() in want for x in strs)
    if name in ("$:", "$like", "$like~"):
        fold = name != "$like"
        return any(wildcard_re(p, fold).fullmatch(x) for p in pats for x in strs)
    if name in ("$regex", "$regex~"):
        flags = re.DOTALL | (re.IGNORECASE if name == "$regex~" else 0)
        return any(re.fullmatch(p, x, flags) for p in pats for x in strs)
    if name == "$in~":
        want = {p.lower() for p in pats if isinstance(p, str)}
        return any(x.lower() in want for x in strs)
    if len(pats) != 1 or not isinstance(pats[0], str):
        raise Unsupported(f"{name}() takes one string argument here")
    f, p = SIMPLE[base], pats[0]
    if name.endswith("~"):
        return any(f(x.lower(), p.lower()) for x in strs)
    return any(f(x, p) for x in strs)


def matches(query, doc):
    first = query.first
    if not isinstance(first, ast.EventQuery) or query.pipes:
        raise Unsupported("only single event queries without pipes are supported")
    if first.event_type != "any":
        cats = [str(c).lower() for c in values(field(doc, "event", ["category"]) or [])]
        if first.event_type.lower() not in cats:
            return False
    return ev(first.query, doc) is True


def batch(request):
    """`--batch`: {"jobs": [{"query": Q, "events": [...]}]} on stdin ->
    {"results": [{"verdicts": [true, ...]} or {"error": "..."}]}, one job per
    query (detc verify runs every query of a build in one process)."""
    results = []
    for job in request["jobs"]:
        try:
            query = parse(job["query"])
            results.append({"verdicts": [bool(matches(query, e)) for e in job["events"]]})
        except Exception as e:  # eql raises ValueError too, for some escapes
            results.append({"error": f"{type(e).__name__}: {e}"})
    return {"results": results}


def main(argv):
    if argv == ["--batch"]:
        print(json.dumps(batch(json.load(sys.stdin))))
        return 0
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    read = lambda n: sys.stdin.read() if n == "-" else open(n, encoding="utf-8").read()
    try:
        query = parse(read(argv[0]))
    except Exception as e:  # eql raises ValueError too, for some escapes
        print(f"eql_eval: query does not parse: {e}", file=sys.stderr)
        return 1
    try:
        # NDJSON lines end at \n only (splitlines() would also split inside
        # strings holding a raw U+2028, U+0085 ...).
        for n, line in enumerate(read(argv[1]).split("\n"), 1):
            if line.strip():
                print("true" if matches(query, json.loads(line)) else "false")
    except Unsupported as e:
        print(f"eql_eval: {e}", file=sys.stderr)
        return 1
    except json.JSONDecodeError as e:
        print(f"eql_eval: event line {n} is not JSON: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

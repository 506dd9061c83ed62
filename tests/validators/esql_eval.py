#!/usr/bin/env python3
"""Decide which Elasticsearch documents survive an ES|QL query's WHERE commands.

usage: esql_eval.py [--types TYPES.json] QUERY.esql DOCS.ndjson   ("-" = stdin for one of them)
       esql_eval.py --selftest
       esql_eval.py --batch        (JSON jobs on stdin, see batch())

Run with .venv/esql/bin/python. The query is parsed with esql-parser 9.1.3 (the
ANTLR grammar of Elasticsearch 9.1.3, see esql_parse.py) and its parse tree is
walked; nothing is re-parsed from text. Each NDJSON line is one document's
_source (nested objects and/or dotted keys, arrays for multi-valued fields, as
eql_eval.py receives it). For each document one line is printed:

  true    the document alone yields at least one row out of the query's
          FROM ... | WHERE/EVAL ... commands (a trailing STATS/KEEP/DROP/RENAME/
          SORT/LIMIT n>0 is parsed and ignored; LIMIT 0 gives false)
  false   it does not (a WHERE condition is false or null for it)

Exit codes: 0 verdicts printed; 1 the query does not parse (FAIL line, as
esql_parse.py); 2 usage; 3 `unsupported: <construct>` (outside the evaluated
subset: nothing else is printed, the evaluator never guesses); 4
`invalid: <reason>` (Elasticsearch would reject the query: type mismatch, unknown
column, bad LIKE escape ...). A line that is not JSON is exit 2.

--types TYPES.json maps Elasticsearch field names to mapping types (keyword,
text, long, integer, double, boolean, ip, date, object, flattened, unmapped,
...). Without it a field's type is inferred from the JSON values of all
documents: string -> keyword, integer -> long, float -> double, bool ->
boolean (a field that is absent from every document then has an unknown type
and is only ever null). With it, a field missing from the file is an
"Unknown column" (invalid).

Semantics implemented, each with its source, are commented in the code below
(search for "SOURCE:"); tests/validators/README.md summarises them.
"""
import ipaddress
import json
import os
import re
import sys

from antlr4.tree.Tree import TerminalNode

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from esql_parse import EsqlSyntaxError, parse  # noqa: E402
from esql_parser.EsqlBaseParser import EsqlBaseParser as P  # noqa: E402


class Unsupported(Exception):
    """Construct outside the evaluated subset (exit 3)."""


class Invalid(Exception):
    """Elasticsearch would reject the query (exit 4)."""


# ---------------------------------------------------------------------------
# Types. KW covers keyword and text (both are "string" types in ES|QL:
# TypeResolutions.isString); INT covers integer/long/short/byte; DBL double.
KW, TEXT, INT, DBL, BOOL, IP, DATE, NULL, UNKNOWN = (
    "keyword", "text", "long", "double", "boolean", "ip", "date", "null", "unknown")
STRINGS = (KW, TEXT)
NUMS = (INT, DBL)

# Mapping type -> ES|QL type of the column.
# SOURCE: ES|QL "Supported field types" docs (docs/reference/query-languages/esql/
# limitations.md): keyword family, text family, numeric, boolean, ip, date are
# supported; flattened, nested, object are not columns / unsupported.
MAPPING = {
    "keyword": KW, "constant_keyword": KW, "wildcard": KW,
    "text": TEXT, "match_only_text": TEXT,
    "long": INT, "integer": INT, "short": INT, "byte": INT,
    "double": DBL,
    "boolean": BOOL, "ip": IP, "date": DATE, "date_nanos": DATE,
}
NOT_COLUMNS = {"object", "nested", "unmapped"}


def kw_sort_key(s):
    # keyword doc values are ordered by their UTF-8 bytes (Lucene BytesRef order)
    return s.encode("utf-8")


def parse_ip(s):
    """IP string -> 16-byte encoding (IPv4 as IPv4-mapped IPv6), as the ip field type
    stores it. SOURCE: Lucene InetAddressPoint.encode; server/.../network/CIDRUtils.java
    (IPV4_PREFIX). None if not an address."""
    try:
        a = ipaddress.ip_address(s)
    except ValueError:
        return None
    if a.version == 4:
        return bytes(10) + b"\xff\xff" + a.packed
    return a.packed


def ip_to_string(b):
    # SOURCE: ES InetAddresses.toAddrString (RFC 5952 lower-case compressed IPv6; an
    # IPv4-mapped address is decoded back to IPv4 by InetAddressPoint.decode).
    if b[:12] == bytes(10) + b"\xff\xff":
        return str(ipaddress.IPv4Address(b[12:]))
    return str(ipaddress.IPv6Address(b))


class MV(list):
    """A multivalue: two or more values in one position."""


def mk(values):
    """Position from a list of non-null values: [] -> null, [x] -> x, more -> MV.
    SOURCE: esql-multivalued-fields.md ("null in a list": nulls are dropped at storage)."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return MV(values)


def vals(v):
    return [] if v is None else (list(v) if isinstance(v, MV) else [v])


# ---------------------------------------------------------------------------
# Documents -> columns
_MISSING = object()


def lookup(obj, keys):
    """Leaf values at a dotted path, through nested objects, dotted keys and arrays of
    objects (Elasticsearch flattens arrays of objects into the leaf field)."""
    out = []

    def walk(o, ks):
        if isinstance(o, list):
            for x in o:
                walk(x, ks)
            return
        if not ks:
            out.append(o)
            return
        if not isinstance(o, dict):
            return
        for i in range(1, len(ks) + 1):
            k = ".".join(ks[:i])
            if k in o:
                walk(o[k], ks[i:])

    walk(obj, keys)
    return out


def leaves(doc, name):
    raw = lookup(doc, name.split("."))
    flat = []

    def fl(x):
        if isinstance(x, list):
            for y in x:
                fl(y)
        elif x is not None:
            flat.append(x)

    for r in raw:
        fl(r)
    return flat


def json_kind(x):
    if isinstance(x, bool):
        return BOOL
    if isinstance(x, int):
        return INT
    if isinstance(x, float):
        return DBL
    if isinstance(x, str):
        return KW
    if isinstance(x, dict):
        return "object"
    return "?"


class Columns:
    """Field name -> ES|QL type, from --types or from the documents."""

    def __init__(self, docs, types=None):
        self.docs, self.types, self.cache = docs, types, {}

    def type_of(self, name):
        if name in self.cache:
            return self.cache[name]
        if self.types is not None:
            if name not in self.types:
                raise Invalid(f"Unknown column [{name}] (not in --types)")
            m = self.types[name]
            if m in NOT_COLUMNS:
                raise Invalid(f"Unknown column [{name}] (mapping type {m} is not a column)")
            if m not in MAPPING:
                raise Unsupported(f"field [{name}] of mapping type [{m}]")
            t = MAPPING[m]
        else:
            kinds = {json_kind(x) for d in self.docs for x in leaves(d, name)}
            if "object" in kinds:
                raise Invalid(f"Unknown column [{name}]: it is an object in the documents")
            if kinds == {INT, DBL}:
                kinds = {DBL}
            if not kinds:
                t = UNKNOWN
            elif len(kinds) == 1 and kinds <= {KW, INT, DBL, BOOL}:
                t = kinds.pop()
            else:
                raise Unsupported(f"field [{name}] has mixed JSON types {sorted(kinds)}; pass --types")
        self.cache[name] = t
        return t

    def value(self, doc, name):
        t = self.type_of(name)
        xs = leaves(doc, name)
        if t == UNKNOWN:
            return t, None
        conv = []
        for x in xs:
            k = json_kind(x)
            if t in STRINGS and k == KW:
                conv.append(x)
            elif t == INT and k == INT:
                conv.append(x)
            elif t == DBL and k in NUMS:
                conv.append(float(x))
            elif t == BOOL and k == BOOL:
                conv.append(x)
            elif t == IP and k == KW and parse_ip(x) is not None:
                conv.append(parse_ip(x))
            elif t == DATE:
                conv.append(x)
            else:
                raise Unsupported(f"value {x!r} of field [{name}] does not fit its type {t}")
        # Doc values: keyword and ip are SortedSet doc values (sorted, duplicates
        # removed); numbers, booleans and dates SortedNumeric (sorted, duplicates kept);
        # text is read from _source (document order, duplicates kept).
        # SOURCE: esql-multivalued-fields.md "Duplicate values" (keyword removes duplicates,
        # long keeps them; order "frequently ascending"). Order is only observable through
        # MV_FIRST/MV_LAST, which this evaluator refuses on multivalues.
        if t == KW or t == IP:
            conv = sorted(set(conv), key=kw_sort_key if t == KW else None)
        elif t in NUMS or t == BOOL:
            conv = sorted(conv)
        return t, mk(conv)


# ---------------------------------------------------------------------------
# Literals
def unquote(text):
    """SOURCE: x-pack/plugin/esql/.../parser/AbstractBuilder.java unquote(): a
    \"\"\"...\"\"\" string is taken verbatim (minus the three quotes on each side); in
    "..." the escapes are \\t \\n \\r \\" \\\\ (the lexer, lexer/Expression.g4
    ESCAPE_SEQUENCE, accepts no others and no raw CR/LF)."""
    if text.startswith('"""'):
        return text[3:-3]
    s, out, i = text[1:-1], [], 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            n = s[i + 1]
            out.append({"t": "\t", "n": "\n", "r": "\r", '"': '"', "\\": "\\"}.get(n, "\\" + n))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def unquote_id(text):
    # SOURCE: IdentifierBuilder: `...` quoted identifier, `` inside is one backquote
    if text.startswith("`"):
        return text[1:-1].replace("``", "`")
    return text


def qualified_name(ctx):
    parts = []
    for c in ctx.identifierOrParameter():
        ident = c.identifier()
        if ident is None:
            raise Unsupported(f"query parameter in a field name: {ctx.getText()}")
        parts.append(unquote_id(ident.getText()))
    return ".".join(parts)


def int_value(ctx):
    v = int(ctx.getText())
    # SOURCE: StringUtils.parseIntegral: int if it fits, else long, else unsigned_long
    if not -(2 ** 63) <= v < 2 ** 63:
        raise Unsupported(f"integer literal {v} outside long")
    return v


# ---------------------------------------------------------------------------
# Lucene wildcard (LIKE) and RegExp (RLIKE) -> Python regular expressions
def like_regex(pattern):
    """LIKE pattern -> compiled regex (whole value, case-sensitive).
    SOURCE: esql-core .../predicate/regex/WildcardPattern.java: the constructor validates
    with StringUtils.wildcardToJavaPattern(pattern, '\\\\'): `\\` must be followed by `*`,
    `?` or `\\` ("Invalid sequence - escape character is not followed by special wildcard
    char", a parsing error); matching uses Lucene WildcardQuery.toAutomaton: `*` any
    sequence of code points, `?` exactly one code point, `\\x` the literal x."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            if i + 1 == len(pattern) or pattern[i + 1] not in "*?\\":
                raise Invalid(f"Invalid pattern for LIKE [{pattern}]: escape character is not "
                              "followed by special wildcard char")
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "*" else "." if c == "?" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


class LuceneRegex:
    """Translate the Lucene RegExp subset to Python `re`; refuse everything else.
    SOURCE: esql-core .../predicate/regex/RLikePattern.java: new RegExp(pattern, RegExp.ALL)
    (Lucene org.apache.lucene.util.automaton.RegExp syntax, whole-value match, no anchors,
    case-sensitive). Accepted: literal characters, `\\c` for a non-alphanumeric c, `.`,
    `[...]`/`[^...]` with ranges, `(...)`, `|`, `*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}`.
    Refused (unsupported): the RegExp.ALL operators `&` `~` `@` `#` `<n-m>` `"..."`,
    `\\d`-style escapes (any backslash + letter/digit), unescaped `^` and `$` (ordinary
    characters in Lucene, anchors in most other dialects), empty groups/alternatives."""
    SPECIAL_REFUSED = set('&~@#<>"')

    def __init__(self, pattern):
        self.p, self.i = pattern, 0
        rx = self.union()
        if self.i != len(self.p):
            self.fail(f"unexpected {self.p[self.i]!r}")
        self.regex = re.compile(rx, re.DOTALL)

    def fail(self, why):
        raise Unsupported(f"RLIKE pattern {self.p!r} at {self.i}: {why}")

    def peek(self):
        return self.p[self.i] if self.i < len(self.p) else None

    def union(self):
        alts = [self.concat()]
        while self.peek() == "|":
            self.i += 1
            alts.append(self.concat())
        if any(a == "" for a in alts):
            self.fail("empty alternative")
        return "|".join(alts) if len(alts) == 1 else "(?:" + "|".join(alts) + ")"

    def concat(self):
        parts = []
        while self.peek() is not None and self.peek() not in "|)":
            parts.append(self.repeat())
        return "".join(parts)

    def repeat(self):
        atom = self.simple()
        while self.peek() is not None and self.peek() in "*+?{":
            c = self.peek()
            if c == "{":
                m = re.compile(r"\{(\d+)(,(\d*))?\}").match(self.p, self.i)
                if not m:
                    self.fail("bad repetition")
                lo, hi = int(m.group(1)), m.group(3)
                if m.group(2) and hi and int(hi) < lo:
                    self.fail("repetition max < min")
                q = "{%d}" % lo if not m.group(2) else "{%d,%s}" % (lo, hi or "")
                self.i = m.end()
            else:
                q = c
                self.i += 1
            atom = "(?:" + atom + ")" + q
        return atom

    def char(self, in_class):
        c = self.peek()
        if c is None:
            self.fail("unexpected end")
        if c == "\\":
            if self.i + 1 >= len(self.p):
                self.fail("trailing backslash")
            n = self.p[self.i + 1]
            if n.isalnum():
                self.fail(f"escape \\{n} (Lucene shorthand classes are not emulated)")
            self.i += 2
            return n
        if c in self.SPECIAL_REFUSED:
            self.fail(f"operator {c!r} (RegExp.ALL syntax is not emulated; escape it)")
        if not in_class and c in "^$":
            self.fail(f"unescaped {c!r} (a literal in Lucene regex, not an anchor; escape it)")
        if not in_class and c in "*+?{}]":
            self.fail(f"misplaced {c!r}")
        self.i += 1
        return c

    def simple(self):
        c = self.peek()
        if c == ".":
            self.i += 1
            return "."
        if c == "(":
            self.i += 1
            if self.peek() == ")":
                self.fail("empty group")
            inner = self.union()
            if self.peek() != ")":
                self.fail("unclosed group")
            self.i += 1
            return "(?:" + inner + ")"
        if c == "[":
            return self.klass()
        return re.escape(self.char(False))

    def klass(self):
        self.i += 1
        neg = False
        if self.peek() == "^":
            neg, self.i = True, self.i + 1
        items = []
        while self.peek() != "]":
            if self.peek() is None:
                self.fail("unclosed character class")
            if self.peek() in "[-":
                self.fail(f"{self.peek()!r} inside a class (write \\{self.peek()})")
            a = self.char(True)
            if self.peek() == "-":
                self.i += 1
                if self.peek() in (None, "]"):
                    self.fail("range without an end")
                b = self.char(True)
                if ord(b) < ord(a):
                    self.fail("reversed range")
                items.append(re.escape(a) + "-" + re.escape(b))
            else:
                items.append(re.escape(a))
        if not items:
            self.fail("empty character class")
        self.i += 1
        return "[" + ("^" if neg else "") + "".join(items) + "]"


# ---------------------------------------------------------------------------
# Expression evaluation. Every function returns (type, value): value is None for
# null, an MV for a multivalue, else a scalar. Booleans in WHERE: True/False/None.
def is_mv(v):
    return isinstance(v, MV)


def ctx_text(ctx):
    return ctx.start.getInputStream().getText(ctx.start.start, ctx.stop.stop)


CMP_OPS = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
           "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}

CASE_FUNCS = ("to_lower", "to_upper")


class Evaluator:
    def __init__(self, columns):
        self.cols = columns

    # -- entry points -------------------------------------------------------------
    def boolean(self, ctx, row):
        t, v = self.expr(ctx, row)
        if t not in (BOOL, NULL, UNKNOWN):
            raise Invalid(f"Condition expression needs to be boolean, found [{t}]: {ctx_text(ctx)}")
        if is_mv(v):
            raise Unsupported(f"multivalued boolean as a condition: {ctx_text(ctx)}")
        return v

    def expr(self, ctx, row):
        name = type(ctx).__name__[:-len("Context")]
        fn = getattr(self, "e_" + name, None)
        if fn is None:
            raise Unsupported(f"{name} expression: {ctx_text(ctx)}")
        return fn(ctx, row)

    # -- plumbing nodes -------------------------------------------------------------
    def e_BooleanDefault(self, ctx, row):
        return self.expr(ctx.valueExpression(), row)

    def e_ValueExpressionDefault(self, ctx, row):
        return self.expr(ctx.operatorExpression(), row)

    def e_OperatorExpressionDefault(self, ctx, row):
        return self.expr(ctx.primaryExpression(), row)

    def e_ParenthesizedExpression(self, ctx, row):
        return self.expr(ctx.booleanExpression(), row)

    def e_ConstantDefault(self, ctx, row):
        return self.constant(ctx.constant())

    def e_RegexExpression(self, ctx, row):
        return self.expr(ctx.regexBooleanExpression(), row)

    def e_Function(self, ctx, row):
        return self.function(ctx.functionExpression(), row)

    def e_Dereference(self, ctx, row):
        name = qualified_name(ctx.qualifiedName())
        if name in row:  # column made by EVAL
            return row[name]
        if name.startswith("_") and name in ("_id", "_index", "_version", "_source", "_ignored", "_score"):
            raise Unsupported(f"metadata field [{name}] in an expression")
        return self.cols.value(row["\0doc"], name)

    def constant(self, c):
        k = type(c).__name__
        if k == "NullLiteralContext":
            return NULL, None
        if k == "StringLiteralContext":
            return KW, unquote(c.string().getText())
        if k == "IntegerLiteralContext":
            return INT, int_value(c.integerValue())
        if k == "DecimalLiteralContext":
            return DBL, float(c.decimalValue().getText())
        if k == "BooleanLiteralContext":
            return BOOL, c.booleanValue().getText().lower() == "true"
        if k == "StringArrayLiteralContext":
            return KW, mk([unquote(s.getText()) for s in c.string()])
        if k == "BooleanArrayLiteralContext":
            return BOOL, mk([b.getText().lower() == "true" for b in c.booleanValue()])
        if k == "NumericArrayLiteralContext":
            xs = []
            for n in c.numericValue():
                xs.append(int_value(n.integerValue()) if n.integerValue() else float(n.getText()))
            t = DBL if any(isinstance(x, float) for x in xs) else INT
            return t, mk([float(x) for x in xs] if t == DBL else xs)
        raise Unsupported(f"literal {c.getText()}")

    # -- logic ------------------------------------------------------------------------
    # SOURCE: esql-core .../predicate/logical/BinaryLogicOperation (And/Or) and Not:
    # SQL three-valued logic: false AND x = false, true OR x = true, otherwise any null
    # operand gives null; NOT null = null. WHERE keeps a row only when the condition is
    # true (Filter drops false and null).
    def e_LogicalBinary(self, ctx, row):
        op = ctx.operator.text.lower()
        a = self.boolean(ctx.left, row)
        b = self.boolean(ctx.right, row)
        if op == "and":
            return BOOL, (False if a is False or b is False else None if a is None or b is None else True)
        return BOOL, (True if a is True or b is True else None if a is None or b is None else False)

    def e_LogicalNot(self, ctx, row):
        v = self.boolean(ctx.booleanExpression(), row)
        return BOOL, None if v is None else not v

    def e_IsNull(self, ctx, row):
        # SOURCE: IsNull/IsNotNull test Block.isNull(position): a multivalue is not null.
        _, v = self.expr(ctx.valueExpression(), row)
        isnull = v is None
        return BOOL, (not isnull) if ctx.NOT() else isnull

    # -- comparisons ---------------------------------------------------------------
    def comparable(self, lt, rt, text):
        """Type check of a binary comparison / IN element; returns the comparison domain.
        SOURCE: EsqlBinaryComparison.resolveInputType / In.resolveType: both sides must be
        the same type family (string with string, numeric with numeric, ...), else a
        verification error such as "first argument of [f == 5] is [keyword] so second
        argument must also be [keyword] but was [integer]" (detection-rules
        tests/test_rules_remote.py test_esql_type_mismatch_error). A string *literal*
        compared with an ip or date column is implicitly cast (Analyzer ImplicitCasting
        javadoc: `ip == "127.0.0.1"`, `date > "2024-08-21"`, `date in (...)`)."""
        if NULL in (lt, rt) or UNKNOWN in (lt, rt):
            return NULL
        if lt in STRINGS and rt in STRINGS:
            return KW
        if lt in NUMS and rt in NUMS:
            return DBL if DBL in (lt, rt) else INT
        if lt == rt == BOOL:
            return BOOL
        if lt == IP and rt in (IP, KW) or rt == IP and lt in (IP, KW):
            return IP
        if DATE in (lt, rt):
            raise Unsupported(f"date comparison: {text}")
        if lt in NUMS and rt in STRINGS:
            # a numeric column against a string: whether 9.1 casts a string literal to a
            # number is not verified here
            raise Unsupported(f"numeric value compared with a string: {text}")
        raise Invalid(f"type mismatch in [{text}]: [{lt}] vs [{rt}]")

    def cast_ip(self, t, v, text, literal):
        if t == IP or v is None:
            return v
        if not literal:
            raise Invalid(f"type mismatch in [{text}]: ip compared with a keyword column")
        out = []
        for x in vals(v):
            b = parse_ip(x)
            if b is None:
                raise Invalid(f"Cannot convert string [{x}] to [IP] in [{text}]")
            out.append(b)
        return mk(out)

    def e_Comparison(self, ctx, row):
        text = ctx_text(ctx)
        op = ctx.comparisonOperator().getText()
        lt, lv = self.expr(ctx.left, row)
        rt, rv = self.expr(ctx.right, row)
        dom = self.comparable(lt, rt, text)
        if dom == IP:
            lv = self.cast_ip(lt, lv, text, self.is_literal(ctx.left))
            rv = self.cast_ip(rt, rv, text, self.is_literal(ctx.right))
        if dom == BOOL and op not in ("==", "!="):
            raise Unsupported(f"ordering booleans: {text}")
        self.case_rewrite_guard(ctx.left, ctx.right, lv, rv, text)
        # SOURCE: Equals/LessThan/... are single-value evaluators: a null operand gives
        # null, a multivalued operand gives null with the warning "single-value function
        # encountered multi-value" (esql-multivalued-fields.md "Functions"; PR #103656:
        # `multi_value =~ "string"` returns null, consistent with ==). `!=` is built as
        # Not(Equals) (ExpressionBuilder.visitComparison), so it is null there too.
        if lv is None or rv is None or is_mv(lv) or is_mv(rv):
            return BOOL, None
        # Strings compare by their UTF-8 bytes (BytesRef.equals / compareTo), i.e. exactly
        # and case-sensitively; code-point order equals UTF-8 byte order. Numbers of mixed
        # integer/double type are compared as doubles.
        if dom == DBL:
            lv, rv = float(lv), float(rv)
        return BOOL, CMP_OPS[op](lv, rv)

    @staticmethod
    def is_literal(ctx):
        while True:
            name = type(ctx).__name__
            if name == "ConstantDefaultContext":
                return True
            if name == "ValueExpressionDefaultContext":
                ctx = ctx.operatorExpression()
            elif name == "OperatorExpressionDefaultContext":
                ctx = ctx.primaryExpression()
            elif name == "BooleanDefaultContext":
                ctx = ctx.valueExpression()
            else:
                return False

    @staticmethod
    def unwrap_function(ctx):
        """The FunctionExpressionContext if ctx is just a function call, else None."""
        while True:
            name = type(ctx).__name__
            if name == "FunctionContext":
                return ctx.functionExpression()
            if name == "ValueExpressionDefaultContext":
                ctx = ctx.operatorExpression()
            elif name == "OperatorExpressionDefaultContext":
                ctx = ctx.primaryExpression()
            elif name == "BooleanDefaultContext":
                ctx = ctx.valueExpression()
            elif name == "ParenthesizedExpressionContext":
                ctx = ctx.booleanExpression()
            else:
                return None

    def case_rewrite_guard(self, left, right, lv, rv, text, patterns=None):
        """TO_LOWER/TO_UPPER(x) compared with a literal (==, !=, IN, LIKE, RLIKE) is rewritten
        by the optimizer. SOURCE: PR elastic/elasticsearch#118870 (ReplaceStringCasingWith
        InsensitiveEquals: InsensitiveEquals(x, literal), or the constant FALSE when the
        literal does not match the function's case, e.g. TO_LOWER(x) == "Abc", which then
        ignores null x under NOT) and ReplaceStringCasingWithInsensitiveRegexMatch (LIKE/
        RLIKE with RegExp.ASCII_CASE_INSENSITIVE, PR #131531). Both agree with the plain
        semantics only for ASCII values and case-matching literals: anything else is
        refused here rather than guessed."""
        for side, other_v, lit_ctx in ((left, rv, right), (right, lv, left)):
            f = self.unwrap_function(side) if side is not None else None
            if f is None or self.fname(f) not in CASE_FUNCS:
                continue
            if patterns is None and not self.is_literal(lit_ctx):
                continue  # compared with a non-literal: not rewritten
            lower = self.fname(f) == "to_lower"
            lits = patterns if patterns is not None else vals(other_v)
            for s in lits:
                if isinstance(s, str) and not s.isascii():
                    raise Unsupported(f"non-ASCII literal with {self.fname(f).upper()}: {text}")
                if isinstance(s, str) and (s != s.lower() if lower else s != s.upper()):
                    raise Unsupported(f"literal {s!r} does not match the case of "
                                      f"{self.fname(f).upper()} (Elasticsearch rewrites it to FALSE): {text}")

    def e_LogicalIn(self, ctx, row):
        text = ctx_text(ctx)
        exprs = ctx.valueExpression()
        lt, lv = self.expr(exprs[0], row)
        items = [self.expr(e, row) for e in exprs[1:]]
        doms = [self.comparable(lt, it, text) for it, _ in items]
        if IP in doms:
            lv = self.cast_ip(lt, lv, text, self.is_literal(exprs[0]))
            items = [(IP, self.cast_ip(it, iv, text, self.is_literal(e)))
                     for (it, iv), e in zip(items, exprs[1:])]
        self.case_rewrite_guard(exprs[0], None, None, None, text,
                                patterns=[v for _, iv in items for v in vals(iv)])
        res = self.in_values(lv, [iv for _, iv in items], DBL in doms)
        # SOURCE: ExpressionBuilder.visitLogicalIn: `NOT IN` is Not(In); one element -> Equals.
        if ctx.NOT():
            res = None if res is None else not res
        return BOOL, res

    @staticmethod
    def in_values(lv, items, as_double):
        """SOURCE: X-InEvaluator.java.st (In evaluator): null lhs -> null; multivalued lhs
        -> null (warning); list elements that are null or multivalued are set aside; if all
        elements are null or all are multivalued -> null; a match -> true; no match ->
        null if some element was null, else false. One element is Equals (same result)."""
        if lv is None or is_mv(lv):
            return None
        if len(items) == 1:
            rv = items[0]
            if rv is None or is_mv(rv):
                return None
        nulls = sum(1 for v in items if v is None)
        mvs = sum(1 for v in items if is_mv(v))
        if nulls == len(items) or mvs == len(items):
            return None
        cands = [v for v in items if v is not None and not is_mv(v)]
        if as_double:
            found = any(float(lv) == float(v) for v in cands)
        else:
            found = any(lv == v for v in cands)
        if found:
            return True
        return None if nulls else False

    # -- LIKE / RLIKE -----------------------------------------------------------------
    def regex_common(self, ctx, row, patterns, kind):
        text = ctx_text(ctx)
        t, v = self.expr(ctx.valueExpression(), row)
        if t not in STRINGS + (NULL, UNKNOWN):
            raise Invalid(f"first argument of [{text}] must be [string], found [{t}]")
        self.case_rewrite_guard(ctx.valueExpression(), None, None, None, text, patterns=patterns)
        rxs = [like_regex(p) if kind == "like" else LuceneRegex(p).regex for p in patterns]
        # SOURCE: RegexMatch evaluators (AutomataMatch) take a single value: null -> null,
        # multivalue -> null with a warning; the Lucene pushdown is wrapped in
        # SingleValueQuery (esql_single_value) with the same result. Whole-value match.
        # LIKE ("a", "b") (WildcardLikeList, GA in 9.1) is true if any pattern matches.
        if v is None or is_mv(v):
            res = None
        else:
            res = any(rx.fullmatch(v) for rx in rxs)
        if ctx.NOT() and res is not None:
            res = not res
        return BOOL, res

    def e_LikeExpression(self, ctx, row):
        return self.regex_common(ctx, row, [unquote(ctx.string().getText())], "like")

    def e_LikeListExpression(self, ctx, row):
        return self.regex_common(ctx, row, [unquote(s.getText()) for s in ctx.string()], "like")

    def e_RlikeExpression(self, ctx, row):
        return self.regex_common(ctx, row, [unquote(ctx.string().getText())], "rlike")

    # -- functions ---------------------------------------------------------------------
    @staticmethod
    def fname(f):
        if type(f).__name__ != "FunctionExpressionContext" or f.functionName() is None:
            return None
        return f.functionName().getText().lower()

    def function(self, f, row):
        name = self.fname(f)
        text = ctx_text(f)
        if name is None:
            raise Unsupported(f"function form: {text}")
        if f.ASTERISK() is not None or f.mapExpression() is not None:
            raise Unsupported(f"function arguments: {text}")
        handler = getattr(self, "f_" + name, None)
        if handler is None:
            raise Unsupported(f"function {name.upper()}(): {text}")
        args = [self.expr(a, row) for a in f.booleanExpression()]
        return handler(args, text, f)

    def need(self, args, n, text, types=None):
        if len(args) != n if isinstance(n, int) else len(args) < n[0]:
            raise Invalid(f"wrong number of arguments in [{text}]")
        if types:
            for i, (t, _) in enumerate(args):
                if t not in types + (NULL, UNKNOWN):
                    raise Invalid(f"argument {i + 1} of [{text}] must be {list(types)}, found [{t}]")

    @staticmethod
    def ascii_only(v, text):
        for x in vals(v):
            if not x.isascii():
                raise Unsupported(f"non-ASCII value {x!r} in case conversion (Java vs Python Unicode "
                                  f"case mapping and the optimizer's ASCII folding are not emulated): {text}")

    def f_to_lower(self, args, text, f):
        # SOURCE: scalar/string/ChangeCase.java: String.toLowerCase(configuration locale)
        # per value (@ConvertEvaluator: multivalues are converted value by value, "Support
        # for multivalued parameters is only available from 9.1.0", to_lower.md). Returns
        # keyword. Only ASCII input is evaluated.
        self.need(args, 1, text, STRINGS)
        t, v = args[0]
        self.ascii_only(v, text)
        return KW, mk([x.lower() for x in vals(v)])

    def f_to_upper(self, args, text, f):
        self.need(args, 1, text, STRINGS)
        t, v = args[0]
        self.ascii_only(v, text)
        return KW, mk([x.upper() for x in vals(v)])

    def _affix(self, args, text, test):
        # SOURCE: scalar/string/StartsWith.java, EndsWith.java: @Evaluator over single
        # values (null -> null, multivalue -> null with a warning); byte-wise prefix /
        # suffix comparison of the UTF-8 strings (case-sensitive).
        self.need(args, 2, text, STRINGS)
        (_, s), (_, p) = args
        if s is None or p is None or is_mv(s) or is_mv(p):
            return BOOL, None
        return BOOL, test(s.encode("utf-8"), p.encode("utf-8"))

    def f_starts_with(self, args, text, f):
        return self._affix(args, text, lambda s, p: s.startswith(p))

    def f_ends_with(self, args, text, f):
        return self._affix(args, text, lambda s, p: s.endswith(p))

    def f_cidr_match(self, args, text, f):
        # SOURCE: scalar/ip/CIDRMatch.java: first argument of type ip (isIPAndExact), then
        # one or more keyword/text CIDR blocks; @Evaluator process(BytesRef ip, BytesRef[]
        # cidrs): single-valued ip (multivalue -> null with a warning; the pushdown is a
        # terms query wrapped in esql_single_value, PR #111501); true if the ip is in ANY
        # block. server/.../network/CIDRUtils.isInRange: a block without "/" is one address;
        # IPv4 and IPv6 compared in the 16-byte IPv4-mapped space.
        self.need(args, (2,), text)
        t, ip = args[0]
        if t not in (IP, NULL, UNKNOWN):
            raise Invalid(f"first argument of [{text}] must be [ip], found value [{t}]")
        for bt, _ in args[1:]:
            if bt not in STRINGS + (NULL,):
                raise Invalid(f"CIDR blocks of [{text}] must be strings, found [{bt}]")
        blocks = [b for _, b in args[1:]]
        if ip is None or is_mv(ip) or any(b is None or is_mv(b) for b in blocks):
            return BOOL, None
        for b in blocks:
            lo, hi = self.cidr_range(b, text)
            if lo <= ip <= hi:
                return BOOL, True
        return BOOL, False

    @staticmethod
    def cidr_range(block, text):
        try:
            if "/" in block:
                net = ipaddress.ip_network(block, strict=False)
            else:
                a = ipaddress.ip_address(block)
                net = ipaddress.ip_network(f"{a}/{a.max_prefixlen}")
        except ValueError:
            raise Unsupported(f"CIDR block {block!r} (Elasticsearch raises at runtime): {text}")
        if net.version == 6 and net.network_address.ipv4_mapped is not None:
            raise Unsupported(f"IPv4-mapped IPv6 CIDR {block!r}: {text}")
        lo, hi = net.network_address.packed, net.broadcast_address.packed
        if net.version == 4:
            pre = bytes(10) + b"\xff\xff"
            lo, hi = pre + lo, pre + hi
        return lo, hi

    def f_to_string(self, args, text, f):
        # SOURCE: scalar/convert/ToString.java: per value; ip -> InetAddresses.toAddrString,
        # keyword/text unchanged, integers decimal, booleans "true"/"false". Doubles use
        # Java's Double.toString format: refused.
        self.need(args, 1, text)
        t, v = args[0]
        if t in STRINGS or t in (NULL, UNKNOWN):
            return KW, v
        if t == IP:
            return KW, mk([ip_to_string(x) for x in vals(v)])
        if t == INT:
            return KW, mk([str(x) for x in vals(v)])
        if t == BOOL:
            return KW, mk(["true" if x else "false" for x in vals(v)])
        raise Unsupported(f"TO_STRING of {t}: {text}")

    # SOURCE for MV_*: docs functions-operators/mv-functions.md and scalar/multivalue/*.java.
    def f_mv_count(self, args, text, f):
        # number of values; null for null (MvCount: integer)
        self.need(args, 1, text)
        _, v = args[0]
        return INT, None if v is None else len(vals(v))

    def _mv_pick(self, args, text, name):
        self.need(args, 1, text)
        t, v = args[0]
        if is_mv(v):
            raise Unsupported(f"{name} on a multivalue: the value order is not guaranteed "
                              f"(mv_first.md / mv_last.md): {text}")
        return t, v

    def f_mv_first(self, args, text, f):
        return self._mv_pick(args, text, "MV_FIRST")

    def f_mv_last(self, args, text, f):
        return self._mv_pick(args, text, "MV_LAST")

    def _mv_minmax(self, args, text, pick):
        # MvMin/MvMax: smallest/largest value; keyword compared by UTF-8 bytes
        self.need(args, 1, text)
        t, v = args[0]
        if t not in STRINGS + NUMS + (BOOL, IP, NULL, UNKNOWN):
            raise Unsupported(f"{text} on {t}")
        if v is None:
            return t, None
        key = kw_sort_key if t in STRINGS else None
        return (KW if t in STRINGS else t), pick(vals(v), key=key)

    def f_mv_min(self, args, text, f):
        return self._mv_minmax(args, text, min)

    def f_mv_max(self, args, text, f):
        return self._mv_minmax(args, text, max)

    def f_mv_dedupe(self, args, text, f):
        # MvDedupe: removes duplicate values (order of the result is not specified)
        self.need(args, 1, text)
        t, v = args[0]
        out = []
        for x in vals(v):
            if x not in out:
                out.append(x)
        return t, mk(out)

    def f_mv_contains(self, args, text, f):
        raise Unsupported(f"MV_CONTAINS is a 9.2.0 preview function (mv_contains.md), "
                          f"not in Elasticsearch 9.1: {text}")


# ---------------------------------------------------------------------------
# Pipeline
class Query:
    """The commands of a parsed query: FROM, then WHERE/EVAL steps, then ignored tail."""

    TAIL = {"StatsCommandContext", "KeepCommandContext", "DropCommandContext",
            "RenameCommandContext", "LimitCommandContext", "SortCommandContext"}

    def __init__(self, tree):
        self.steps, self.limit0 = [], False
        q = tree.query()
        cmds = []
        while type(q).__name__ == "CompositeQueryContext":
            cmds.append(q.processingCommand())
            q = q.query()
        cmds.reverse()
        src = q.sourceCommand()
        if src.fromCommand() is None:
            raise Unsupported(f"source command other than FROM: {ctx_text(src)}")
        ipm = src.fromCommand().indexPatternAndMetadataFields()
        self.indices = [ctx_text(p) for p in ipm.indexPattern()]
        md = ipm.metadata()
        self.metadata = [m.getText() for m in md.UNQUOTED_SOURCE()] if md is not None else []
        tail = False
        for pc in cmds:
            c = pc.getChild(0)
            k = type(c).__name__
            if k == "WhereCommandContext":
                if tail:
                    raise Unsupported(f"WHERE after STATS/KEEP/DROP/RENAME/LIMIT: {ctx_text(c)}")
                self.steps.append(("where", c.booleanExpression()))
            elif k == "EvalCommandContext":
                if tail:
                    raise Unsupported(f"EVAL after STATS/KEEP/DROP/RENAME/LIMIT: {ctx_text(c)}")
                self.steps.append(("eval", c.fields()))
            elif k in self.TAIL:
                if k == "LimitCommandContext":
                    n = c.constant()
                    if type(n).__name__ == "IntegerLiteralContext" and int(n.getText()) == 0:
                        self.limit0 = True
                if k != "SortCommandContext":
                    tail = True
            else:
                raise Unsupported(f"command {ctx_text(c).split()[0].upper()}: {ctx_text(c)}")

    def run(self, ev, doc):
        """True if the document survives every WHERE."""
        # Every step is evaluated even after a WHERE has dropped the row, so that an
        # unsupported or invalid construct anywhere is always reported.
        row, keep = {"\0doc": doc}, True
        for kind, node in self.steps:
            if kind == "where":
                if ev.boolean(node, row) is not True:
                    keep = False
            else:
                for field in node.field():
                    qn = field.qualifiedName()
                    name = qualified_name(qn) if qn is not None else ctx_text(field)
                    row[name] = ev.expr(field.booleanExpression(), row)
        return keep and not self.limit0


def evaluate(query_text, docs, types=None):
    """-> list of booleans; raises EsqlSyntaxError / Unsupported / Invalid."""
    tree, _ = parse(query_text)
    q = Query(tree)
    ev = Evaluator(Columns(docs, types))
    q.run(ev, {})  # static pass: every construct and type is checked even without documents
    return [q.run(ev, d) for d in docs]


# ---------------------------------------------------------------------------
SELFTEST_DOCS = [
    {"k": {"verb": "create", "user": "Alice", "groups": ["system:masters", "dev"],
           "one": ["solo"], "code": 201, "ratio": 0.5, "ok": True, "ip": "10.1.2.3",
           "ips": ["10.0.0.1", "192.168.0.1"], "v6": "fd00::1", "path": "a*b\\c", "dup": ["x", "x"]}},
    {"k": {"verb": "CREATE", "user": None, "code": 404}},
]
SELFTEST_TYPES = {"k.verb": "keyword", "k.user": "keyword", "k.groups": "keyword", "k.one": "keyword",
                  "k.code": "long", "k.ratio": "double", "k.ok": "boolean", "k.ip": "ip",
                  "k.ips": "ip", "k.v6": "ip", "k.path": "keyword", "k.dup": "keyword",
                  "k.absent": "keyword"}
# (where-condition, expected verdicts for the two docs, or "unsupported"/"invalid")
SELFTEST = [
    ('k.verb == "create"', [True, False]),                      # case-sensitive ==
    ('k.verb != "create"', [False, True]),
    ('TO_LOWER(k.verb) == "create"', [True, True]),
    ('TO_LOWER(k.verb) == "Create"', "unsupported"),            # optimizer FALSE rewrite
    ('k.user == "Alice"', [True, False]),                       # JSON null = null
    ('NOT k.user == "Alice"', [False, False]),                  # NOT null = null
    ('k.user IS NULL', [False, True]),
    ('k.absent IS NULL AND k.absent IS NULL', [True, True]),
    ('k.absent == "x" OR k.verb == "create"', [True, False]),   # null OR true = true
    ('k.absent == "x" AND k.verb == "nope"', [False, False]),   # null AND false = false
    ('k.groups == "dev"', [False, False]),                      # multivalue -> null
    ('k.groups != "dev"', [False, False]),
    ('NOT k.groups == "dev"', [False, False]),
    ('k.groups IN ("dev", "x")', [False, False]),
    ('k.groups LIKE "*"', [False, False]),
    ('k.groups IS NOT NULL', [True, False]),
    ('MV_COUNT(k.groups) == 2', [True, False]),
    ('MV_MIN(k.groups) == "dev"', [True, False]),
    ('k.one == "solo"', [True, False]),                         # one-element array = single value
    ('k.dup == "x"', [True, False]),                            # keyword dedupes ["x","x"]
    ('STARTS_WITH(k.groups, "sys")', [False, False]),
    ('TO_LOWER(k.groups) IS NOT NULL', [True, False]),          # TO_LOWER maps multivalues
    ('k.verb IN ("create", null)', [True, False]),              # no match + null -> null
    ('NOT k.verb IN ("x", null)', [False, False]),
    ('NOT k.verb IN ("x", "y")', [True, True]),
    ('k.verb LIKE "cr?at*"', [True, False]),
    ('k.verb LIKE ("X*", "CRE*")', [False, True]),
    ('k.path LIKE """a\\*b\\\\c"""', [True, False]),              # escaped * and \\
    ('k.path LIKE "a\\\\*b\\\\\\\\c"', [True, False]),              # same through "..." escapes
    ('k.path LIKE """a\\b"""', "invalid"),                      # \\b is not a wildcard escape
    ('k.verb RLIKE "c(r|x)e[a-z]{3}"', [True, False]),
    ('k.verb RLIKE "cre"', [False, False]),                     # whole value
    ('k.verb RLIKE "^create$"', "unsupported"),
    ('k.verb RLIKE "\\\\d+"', "unsupported"),
    ('k.code >= 200 AND k.code < 300', [True, False]),
    ('k.code IN (201, 404)', [True, True]),
    ('k.ratio == 0.5 AND k.code > 200.5', [True, False]),
    ('k.code == "201"', "unsupported"),
    ('k.verb == 5', "invalid"),
    ('k.ok == true', [True, False]),
    ('k.ok', [True, False]),
    ('CIDR_MATCH(k.ip, "10.0.0.0/8")', [True, False]),
    ('CIDR_MATCH(k.ip, "192.168.0.0/16", "10.1.2.3")', [True, False]),
    ('CIDR_MATCH(k.v6, "fd00::/8")', [True, False]),
    ('CIDR_MATCH(k.ips, "10.0.0.0/8")', [False, False]),        # multivalued ip -> null
    ('CIDR_MATCH(k.verb, "10.0.0.0/8")', "invalid"),
    ('k.ip == "10.1.2.3"', [True, False]),                      # implicit cast of the literal
    ('TO_STRING(k.ip) IN ("10.1.2.3", "::1")', [True, False]),
    ('ENDS_WITH(k.verb, "ate")', [True, False]),
    ('MV_CONTAINS(k.groups, "dev")', "unsupported"),
    ('k.nope == "x"', "invalid"),
]


def selftest():
    bad = 0
    for cond, want in SELFTEST:
        q = f"FROM logs-* METADATA _id, _index, _version | WHERE {cond} | KEEP _id"
        try:
            got = evaluate(q, SELFTEST_DOCS, SELFTEST_TYPES)
        except Unsupported:
            got = "unsupported"
        except Invalid:
            got = "invalid"
        ok = got == want
        bad += not ok
        print(f"{'OK  ' if ok else 'FAIL'} {cond}  ->  {got}" + ("" if ok else f"  (expected {want})"))
    print(f"esql_eval selftest: {len(SELFTEST) - bad} passed, {bad} failed")
    return 1 if bad else 0


def batch(request):
    """`--batch`: {"jobs": [{"query": Q, "docs": [...], "types": {...} or null}]}
    on stdin -> {"results": [{"verdicts": [...]} or {"error": "..."}]}, where an
    error starts with `parse:`, `unsupported:` or `invalid:` (detc verify runs
    every query of a build in one process)."""
    results = []
    for job in request["jobs"]:
        try:
            results.append({"verdicts": evaluate(job["query"], job["docs"], job.get("types"))})
        except EsqlSyntaxError as e:
            results.append({"error": f"parse: {e}"})
        except Unsupported as e:
            results.append({"error": f"unsupported: {e}"})
        except Invalid as e:
            results.append({"error": f"invalid: {e}"})
    return {"results": results}


def main(argv):
    if argv == ["--selftest"]:
        return selftest()
    if argv == ["--batch"]:
        print(json.dumps(batch(json.load(sys.stdin))))
        return 0
    types = None
    if len(argv) >= 2 and argv[0] == "--types":
        try:
            with open(argv[1], encoding="utf-8") as fh:
                types = json.load(fh)
        except (OSError, ValueError) as e:
            print(f"esql_eval: cannot read --types {argv[1]}: {e}", file=sys.stderr)
            return 2
        argv = argv[2:]
    if len(argv) != 2 or argv.count("-") > 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    read = lambda n: sys.stdin.read() if n == "-" else open(n, encoding="utf-8").read()  # noqa: E731
    try:
        query_text, docs_text = read(argv[0]), read(argv[1])
    except OSError as e:
        print(f"esql_eval: {e}", file=sys.stderr)
        return 2
    docs = []
    # NDJSON lines end at \n only (splitlines() would also split at U+2028 etc.).
    for n, line in enumerate(docs_text.split("\n"), 1):
        if line.strip():
            try:
                docs.append(json.loads(line))
            except json.JSONDecodeError as e:
                print(f"esql_eval: document line {n} is not JSON: {e}", file=sys.stderr)
                return 2
    try:
        verdicts = evaluate(query_text, docs, types)
    except EsqlSyntaxError as e:
        print(f"FAIL {argv[0]}: {e}")
        return 1
    except Unsupported as e:
        print(f"unsupported: {e}")
        return 3
    except Invalid as e:
        print(f"invalid: {e}")
        return 4
    for v in verdicts:
        print("true" if v else "false")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Check elastic/detection-rules style TOML rule files.

usage: toml_check.py RULE.toml [RULE.toml ...]

Loads each file with tomllib and checks the keys and value shapes that
detection-rules' schema and unit tests require (patterns copied from its
schemas/definitions.py and tests). With language = "eql" the query is also
parsed with eql 1.0.1 when the module is importable (panther or sigma venv).
With type = "esql" (language = "esql") the rule follows detection-rules'
ESQLRuleData instead: no `index` key, `from`/`interval` optional, the query
needs `METADATA _id, _version, _index` in FROM or a `STATS ... BY`, and a KEEP
(listing _id, _version, _index unless the query aggregates); the query is
parsed with esql_parse.py under $DETC_VENV_DIR/esql (never with eql).
Exit 0 when every file passes, 1 listing the problems, 2 on usage errors.
"""
import os
import re
import subprocess
import sys
import tomllib

# eql imports every "eql_*" module on sys.path as a plugin at its first parse:
# keep this folder (eql_parse.py, eql_eval.py) off the path.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

DATE = re.compile(r"^\d{4}/\d{2}/\d{2}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
NAME = re.compile(r"^[a-zA-Z0-9].+?[a-zA-Z0-9()]$")
INTERVAL = re.compile(r"^\d+[mshd]$")
FROM = re.compile(r"^now-\d+[mshd]$")
TACTIC_ID = re.compile(r"^TA\d{4}$")
TECHNIQUE_ID = re.compile(r"^T\d{4}$")
SUBTECHNIQUE_ID = re.compile(r"^T\d{4}\.\d{3}$")
TACTIC_URL = re.compile(r"^https://attack\.mitre\.org/tactics/TA[0-9]+/$")
TECHNIQUE_URL = re.compile(r"^https://attack\.mitre\.org/techniques/T[0-9]+/$")
SUBTECHNIQUE_URL = re.compile(r"^https://attack\.mitre\.org/techniques/T[0-9]+/[0-9]+/$")
MATURITY = {"development", "experimental", "beta", "production", "deprecated"}
RULE_TYPES = {"query", "saved_query", "machine_learning", "eql", "esql", "threshold",
              "threat_match", "new_terms"}
LANGUAGES = {"eql", "esql", "kuery", "lucene"}
# detection-rules tests/test_all_rules.py TestRiskScoreMismatch
SEVERITY_BANDS = {"low": (0, 21), "medium": (22, 47), "high": (48, 73), "critical": (74, 100)}
TAG_PREFIXES = {"Data Source", "Domain", "OS", "Resources", "Rule Type", "Tactic", "Threat",
                "Use Case", "Mitre Atlas", "Language"}


# detection-rules detection_rules/rule.py ESQLRuleData.validates_esql_data (snapshot
# 14cf530f, 2026-08-21), applied to the lower-cased query exactly as there:
ESQL_METADATA_OR_STATS = re.compile(
    r"(from\s+(?:\S+\s*,\s*)*\S+\s+metadata\s+"
    r"(?:_id|_version|_index)(?:,\s*(?:_id|_version|_index)){2})"
    r"|(\bstats\b.*?\bby\b)",
    re.DOTALL,
)
ESQL_KEEP = re.compile(r"\|\s*keep\b\s+([^\|]+)", re.IGNORECASE | re.DOTALL)
ESQL_AGGREGATE = re.compile(r"\|\s*stats\b(?:\s+([^\|]+?))?(?:\s+by\s+([^\|]+))?", re.IGNORECASE | re.DOTALL)


def esql_query_errors(query):
    errs = []
    q = query.lower()
    if not ESQL_METADATA_OR_STATS.search(q):
        errs.append("rule.query: a non-aggregate ES|QL query needs 'metadata _id, _version, _index' "
                    "in FROM (or a STATS ... BY)")
    keeps = list(ESQL_KEEP.finditer(q))
    if not keeps:
        errs.append("rule.query: an ES|QL rule query needs a KEEP command")
    elif not ESQL_AGGREGATE.search(q):
        for m in keeps:
            fields = [f.strip() for f in re.sub(r"//.*", "", m.group(1)).split(",") if f.strip()]
            if "*" not in fields and not {"_id", "_version", "_index"} <= set(fields):
                errs.append("rule.query: the KEEP of a non-aggregate ES|QL query must list _id, _version, _index")
    venvs = os.environ.get("DETC_VENV_DIR") or os.path.join(HERE, "..", "..", ".venv")
    python = os.path.join(venvs, "esql", "bin", "python")
    if not os.path.exists(python):
        errs.append(f"rule.query not parsed: {python} missing (run .ci/setup-validators)")
        return errs
    r = subprocess.run([python, os.path.join(HERE, "esql_parse.py"), "-"], input=query,
                       capture_output=True, text=True)
    if r.returncode != 0:
        out = [ln for ln in r.stdout.splitlines() if not ln.startswith("esql_parse:")]
        errs.append("rule.query does not parse with esql-parser 9.1.3: "
                    + "\n    ".join(out or [r.stderr.strip()]).removeprefix("FAIL -: "))
    return errs


def is_str_list(v):
    return isinstance(v, list) and v and all(isinstance(x, str) and x for x in v)


def check_rule(doc):
    errs = []

    def need(table, key, ok, what):
        if key not in table:
            errs.append(f"missing {what}")
            return None
        if not ok(table[key]):
            errs.append(f"bad {what} = {table[key]!r}")
        return table[key]

    nonempty = lambda v: isinstance(v, str) and v.strip() != ""  # noqa: E731
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        errs.append("missing [metadata]")
        meta = {}
    need(meta, "creation_date", lambda v: isinstance(v, str) and DATE.match(v), "metadata.creation_date (YYYY/MM/DD)")
    need(meta, "updated_date", lambda v: isinstance(v, str) and DATE.match(v), "metadata.updated_date (YYYY/MM/DD)")
    need(meta, "maturity", lambda v: v in MATURITY, f"metadata.maturity (one of {sorted(MATURITY)})")
    need(meta, "integration", is_str_list, "metadata.integration (non-empty list of strings)")

    rule = doc.get("rule")
    if not isinstance(rule, dict):
        errs.append("missing [rule]")
        return errs
    need(rule, "author", is_str_list, "rule.author (non-empty list of strings)")
    need(rule, "description", nonempty, "rule.description")
    need(rule, "name", lambda v: isinstance(v, str) and NAME.match(v), "rule.name")
    need(rule, "rule_id", lambda v: isinstance(v, str) and UUID.match(v), "rule.rule_id (lower-case UUID)")
    sev = need(rule, "severity", lambda v: v in SEVERITY_BANDS, f"rule.severity (one of {list(SEVERITY_BANDS)})")
    score = need(rule, "risk_score",
                 lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 100,
                 "rule.risk_score (int 1..100)")
    if sev in SEVERITY_BANDS and isinstance(score, int):
        lo, hi = SEVERITY_BANDS[sev]
        if not lo <= score <= hi:
            errs.append(f"rule.risk_score {score} outside the {sev} band {lo}..{hi}")
    rtype = need(rule, "type", lambda v: v in RULE_TYPES, f"rule.type (one of {sorted(RULE_TYPES)})")
    lang = need(rule, "language", lambda v: v in LANGUAGES, f"rule.language (one of {sorted(LANGUAGES)})")
    if rtype == "eql" and lang != "eql":
        errs.append("rule.type eql needs rule.language = \"eql\"")
    esql = rtype == "esql" or lang == "esql"
    if esql and (rtype, lang) != ("esql", "esql"):
        errs.append("rule.type esql and rule.language esql go together (ESQLRuleData)")
    query = need(rule, "query", nonempty, "rule.query")
    if esql:
        # ESQLRuleData: "Index is not a valid field for ES|QL rule type." (the index is the
        # query's FROM); `from` and `interval` are optional (default now-6m / 5m).
        if "index" in rule:
            errs.append("rule.index is not allowed for an ES|QL rule (the query's FROM names the index)")
        for key, pat, what in (("from", FROM, "rule.from (now-<n><s|m|h|d>)"),
                               ("interval", INTERVAL, "rule.interval (<n><s|m|h|d>)")):
            if key in rule:
                need(rule, key, lambda v, pat=pat: isinstance(v, str) and pat.match(v), what)
    else:
        need(rule, "index", is_str_list, "rule.index (non-empty list of strings)")
        need(rule, "from", lambda v: isinstance(v, str) and FROM.match(v), "rule.from (now-<n><s|m|h|d>)")
        need(rule, "interval", lambda v: isinstance(v, str) and INTERVAL.match(v), "rule.interval (<n><s|m|h|d>)")
    need(rule, "timestamp_override", lambda v: v == "event.ingested", "rule.timestamp_override (\"event.ingested\")")
    need(rule, "license", lambda v: v == "Elastic License v2", "rule.license (\"Elastic License v2\")")
    tags = need(rule, "tags", is_str_list, "rule.tags (non-empty list of strings)") or []
    for t in tags if isinstance(tags, list) else []:
        if not isinstance(t, str) or ": " not in t or t.split(": ", 1)[0] not in TAG_PREFIXES:
            errs.append(f"rule.tags entry {t!r} is not '<Prefix>: <value>' with a known prefix")
    for key in ("false_positives", "references"):
        if key in rule and not is_str_list(rule[key]):
            errs.append(f"bad rule.{key} (list of strings)")

    threats = rule.get("threat")
    if not isinstance(threats, list) or not threats:
        errs.append("missing [[rule.threat]]")
        threats = []
    for i, th in enumerate(threats):
        where = f"rule.threat[{i}]"
        if th.get("framework") != "MITRE ATT&CK":
            errs.append(f"{where}.framework must be \"MITRE ATT&CK\"")
        tac = th.get("tactic")
        if not isinstance(tac, dict):
            errs.append(f"missing [{where}.tactic]")
        else:
            if not TACTIC_ID.match(str(tac.get("id", ""))):
                errs.append(f"bad {where}.tactic.id {tac.get('id')!r}")
            if not nonempty(tac.get("name")):
                errs.append(f"missing {where}.tactic.name")
            elif f"Tactic: {tac['name']}" not in tags:
                errs.append(f"tag 'Tactic: {tac['name']}' missing for {where}")
            if not TACTIC_URL.match(str(tac.get("reference", ""))):
                errs.append(f"bad {where}.tactic.reference {tac.get('reference')!r}")
        for j, tech in enumerate(th.get("technique", [])):
            w = f"{where}.technique[{j}]"
            if not TECHNIQUE_ID.match(str(tech.get("id", ""))) or not nonempty(tech.get("name")) \
                    or not TECHNIQUE_URL.match(str(tech.get("reference", ""))):
                errs.append(f"bad {w} (id T####, name, reference .../techniques/T####/)")
            for k, sub in enumerate(tech.get("subtechnique", [])):
                if not SUBTECHNIQUE_ID.match(str(sub.get("id", ""))) or not nonempty(sub.get("name")) \
                        or not SUBTECHNIQUE_URL.match(str(sub.get("reference", ""))) \
                        or not str(sub.get("id", "")).startswith(str(tech.get("id", "")) + "."):
                    errs.append(f"bad {w}.subtechnique[{k}] (id T####.###, name, reference .../T####/###/)")

    if esql and isinstance(query, str) and query.strip():
        errs.extend(esql_query_errors(query))
    if lang == "eql" and isinstance(query, str):
        try:
            import eql
        except ImportError:
            eql = None
        if eql is not None:
            try:
                with eql.parser.elasticsearch_syntax, eql.parser.ignore_missing_functions:
                    eql.parse_query(query)
            except Exception as e:  # eql 1.0.1 also raises ValueError on some escapes
                errs.append(f"rule.query does not parse with eql {eql.__version__}: {e}")
    return errs


def main(argv):
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    bad = 0
    for name in argv:
        try:
            with open(name, "rb") as f:
                errs = check_rule(tomllib.load(f))
        except (OSError, tomllib.TOMLDecodeError) as e:
            errs = [f"cannot load: {e}"]
        if errs:
            bad += 1
            print(f"FAIL {name}")
            for e in errs:
                print(f"  - {e}")
        else:
            print(f"OK   {name}")
    if bad:
        print(f"toml_check: {bad} of {len(argv)} files failed")
        return 1
    print(f"toml_check: {len(argv)} files OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

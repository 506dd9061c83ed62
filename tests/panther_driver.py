"""Helper of tests/panther.rs, run with the panther venv's python
(.venv/panther/bin/python, panther-analysis-tool 1.11.1 and panther_core).

    panther_driver.py verdicts   stdin {"dir": D, "cases": [{"stem": S, "log": {...}}]}
        Runs D/S.py (with D/../global_helpers importable) on each log
        wrapped in a read-only PantherEvent, as pat does:
        rule(), and when it matches severity() (DEFAULT when the module has
        none), detc_indicators(), title(), dedup() and alert_context() (which
        must be JSON-serialisable). Prints {"results": [{matched, severity,
        indicators, title, dedup, context} or {error}]}.
    panther_driver.py floats     stdin {"file": F, "floats": [...]}
        Prints F's _float_text() of each float (serde_json's text of a float).
    panther_driver.py literal    stdin {"file": F, "name": N}
        Parses F with ast and prints ast.literal_eval of the value assigned to N.
    panther_driver.py yaml       stdin {"file": F}
        Prints yaml.safe_load(F) as JSON.
"""

import ast
import importlib.util
import json
import os
import sys
import traceback

from panther_core.enriched_event import PantherEvent

_MODULES = {}


def load(path, name):
    if path not in _MODULES:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _MODULES[path] = module
    return _MODULES[path]


def verdict(module, log):
    event = PantherEvent(log)
    matched = module.rule(event)
    if not isinstance(matched, bool):
        raise TypeError("rule() returned %r" % (matched,))
    out = {"matched": matched}
    if matched:
        out["severity"] = module.severity(event) if hasattr(module, "severity") else "DEFAULT"
        out["indicators"] = sorted(module.detc_indicators(event))
        out["title"] = module.title(event) if hasattr(module, "title") else None
        out["dedup"] = module.dedup(event) if hasattr(module, "dedup") else None
        context = module.alert_context(event)
        json.dumps(context, allow_nan=False)
        out["context"] = context
    return out


def main():
    mode = sys.argv[1]
    request = json.load(sys.stdin)
    if mode == "verdicts":
        # As pat does: the global helpers are importable by their GlobalID.
        sys.path.insert(0, os.path.join(request["dir"], "..", "global_helpers"))
        results = []
        for case in request["cases"]:
            try:
                module = load("%s/%s.py" % (request["dir"], case["stem"]), case["stem"])
                results.append(verdict(module, case["log"]))
            except Exception:  # reported to the Rust test
                results.append({"error": traceback.format_exc()})
        print(json.dumps({"results": results}))
    elif mode == "floats":
        module = load(request["file"], "floats")
        print(json.dumps([module._float_text(f) for f in request["floats"]]))
    elif mode == "literal":
        with open(request["file"], encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == request["name"] for t in node.targets
            ):
                print(json.dumps(ast.literal_eval(node.value)))
                return
        raise SystemExit("no assignment to " + request["name"])
    elif mode == "yaml":
        import yaml

        with open(request["file"], encoding="utf-8") as f:
            print(json.dumps(yaml.safe_load(f)))
    else:
        raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    main()

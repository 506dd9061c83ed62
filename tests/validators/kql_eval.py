#!/usr/bin/env python3
"""Evaluate one Sentinel KQL query over raw cloud records with duckdb-kql 1.1.2.

usage: kql_eval.py QUERY.kql RECORDS.ndjson --table TABLE [--any-audit-category]
       kql_eval.py --batch   (JSON jobs on stdin, see batch())
       ("-" = stdin for either; TABLE: AKSAudit AKSAuditAdmin AzureDiagnostics
        AzureActivity GCPAuditLogs)

Each NDJSON line is ONE record as stored before Log Analytics ingestion (what
detc's tests hold). It is converted to the row Log Analytics would store in
TABLE (rules below), the query runs over a table holding only that row, and
one line per record is printed:
    true            the query returned at least one row
    false           it returned none, or the record never reaches TABLE
    skip: <reason>  duckdb-kql refused a construct (KqlUnsupportedError,
                    KqlSchemaError) or failed at run time: no verdict is guessed
Exit 0 when it ran (skips included), 1 when the query is broken (KQL syntax
error, unknown table or column, invalid regex) or a record is not valid JSON,
2 on usage errors. Run it with .venv/kql/bin/python.

Every column of TABLE in kql/schemas.json exists in the row table (typed:
string VARCHAR, datetime TIMESTAMP, dynamic JSON, int INTEGER, long BIGINT,
real DOUBLE, bool BOOLEAN, guid VARCHAR). Kusto strings are never null, so an
absent string column is "" (as in Log Analytics); absent dynamic, datetime and
number columns are null.

Row conversion (what ingestion does; sources cited per rule)
------------------------------------------------------------
AKSAudit / AKSAuditAdmin (resource-specific mode). Input: an AKS resource-log
record {"category", "properties": {"log": Event JSON string or object, "pod",
...}, "resourceId", "time", ...}.
  * only category "kube-audit" reaches AKSAudit and only "kube-audit-admin"
    reaches AKSAuditAdmin; any other category (kube-apiserver, guard, ...) has
    no row: verdict false, no query run. With --any-audit-category both audit
    categories count as the same event stream for both tables.
  * AKSAuditAdmin never holds verbs get and list ("kube-audit-admin ...
    excluding the get and list audit events", AKS monitoring reference,
    https://learn.microsoft.com/azure/aks/monitor-aks-reference#resource-logs;
    the AKSAuditAdmin table page says the same): such a record has no row.
  * Event key -> column, from the column descriptions on the AKSAudit table
    page (MicrosoftDocs/azure-reference-other azure-monitor-ref/tables/aksaudit.md):
    level->Level, auditID->AuditId, stage->Stage, requestURI->RequestUri,
    verb->Verb, user->User, sourceIPs->SourceIps, userAgent->UserAgent,
    objectRef->ObjectRef, responseStatus->ResponseStatus,
    requestObject->RequestObject, responseObject->ResponseObject,
    requestReceivedTimestamp->RequestReceivedTime,
    stageTimestamp->StageReceivedTime, annotations->Annotations;
    properties.pod->PodName; record time->TimeGenerated; resourceId->_ResourceId
    (kept as sent; Log Analytics may change its case); Type=TABLE,
    SourceSystem="Azure". Event keys without a column (kind, apiVersion,
    impersonatedUser) are dropped: a query cannot see them.
AzureDiagnostics (legacy "Azure diagnostics" mode). Every category gets a row
  (the query filters on Category): category->Category, properties.log->log_s
  (the Event JSON string as sent; an object is serialised), properties.pod->
  pod_s, properties.stream->stream_s, properties.containerID->containerID_s,
  ccpNamespace->ccpNamespace_s, operationName->OperationName, time->
  TimeGenerated, resourceId->ResourceId and _ResourceId, and from the resource
  id: SubscriptionId, ResourceGroup, ResourceProvider, ResourceType, Resource
  (upper-cased, as AzureDiagnostics stores them). Type="AzureDiagnostics".
AzureActivity. Input: an activity-log record as exported to storage/Event Hubs
  (top-level keys matched case-insensitively: operationName or OperationName).
  Mapping from Microsoft's "Azure Activity log" page, section "Data structure
  changes" (https://learn.microsoft.com/azure/azure-monitor/essentials/activity-log;
  JSON -> column: category->CategoryValue, status->ActivityStatusValue,
  subStatus->ActivitySubstatusValue, operationName->OperationNameValue,
  resourceProviderName->ResourceProviderValue; the deprecated columns
  Category, ActivityStatus, ActivitySubstatus, OperationName, ResourceProvider
  "have no data") and the export schema (activity-log-schema, "Schema from
  storage account and event hubs": status.value is exported as resultType,
  subStatus.value as resultSignature, claims/authorization inside identity):
    operationName->OperationNameValue, resultType->ActivityStatusValue,
    resultSignature->ActivitySubstatusValue, category->CategoryValue,
    callerIpAddress->CallerIpAddress, correlationId->CorrelationId,
    level->Level, time->TimeGenerated, resourceId->ResourceId and
    _ResourceId, properties->Properties_d (and Properties as JSON text),
    identity.authorization->Authorization_d (+ Authorization),
    identity.claims->Claims_d (+ Claims), httpRequest->HTTPRequest (text),
    Caller = top-level caller if present, else the upn claim, else the
    objectidentifier claim, else the appid claim (the AzureActivity page:
    "UPN claim or SPN claim based on availability"); SubscriptionId,
    ResourceGroup, ResourceProviderValue, Resource parsed from resourceId.
  Values are copied as sent: the page says Log Analytics may rewrite status
  values (Success -> Succeeded) and upper-case some columns; match both
  spellings case-insensitively in queries.
GCPAuditLogs. Input: a Cloud Logging LogEntry of an audit log. No mapping is
  published as a transform: the connector's DCR (Azure/Azure-Sentinel
  "Solutions/Google Cloud Platform Audit Logs/Data Connectors/GCPAuditLogs_ccp/dcr.json")
  sends the stream "Microsoft-GCPAuditLogs" straight to the table, so the
  mapping is done by the service. It is read here from the table's column
  descriptions (gcpauditlogs-include.md) and Microsoft's exported sample rows
  ("Solutions/Google Cloud Platform Audit Logs/Sample Data/GCPAuditLogs_*.csv",
  e.g. GCPResourceType "gce_snapshot" = resource.type, Status "{}" when
  protoPayload.status is {}):
    protoPayload.serviceName->ServiceName, .methodName->MethodName,
    .resourceName->GCPResourceName, .authenticationInfo->AuthenticationInfo,
    .authenticationInfo.principalEmail->PrincipalEmail,
    .authorizationInfo->AuthorizationInfo, .requestMetadata->RequestMetadata,
    .request->Request, .response->Response, .metadata->Metadata,
    .status->Status, .status.message->StatusMessage (inferred from the name),
    .numResponseItems->NumResponseItems, .resourceLocation->ResourceLocation,
    .resourceOriginalState->ResourceOriginalState, .serviceData->ServiceData;
    resource.type->GCPResourceType, resource.labels.project_id->ProjectId,
    logName->LogName, insertId->InsertId, severity->Severity,
    timestamp->Timestamp, receiveTimestamp (else timestamp)->TimeGenerated.
    Other resource.labels (cluster_name, location) have no column.

duckdb-kql 1.1.2 compared with Kusto (tested here, 2026; K = Kusto docs)
-------------------------------------------------------------------------
Faithful:
  ==, !=, =~, !~, in, !in, in~, !in~ (string and dynamic operands; `in~`
  accepts a dynamic array or a let-bound list); startswith, endswith,
  contains, has, has_any and their _cs / negated forms (case-insensitive
  without _cs, case-sensitive with it); `has` matches whole terms ("rea" does
  not match "create", "kube-system" matches "system:serviceaccount:kube-system:x");
  `has` on a dynamic array or bag matches its JSON text; matches regex (RE2,
  case-sensitive, `(?i)` works; an invalid regex is a run-time error -> exit 1);
  isnull/isnotnull/isempty/isnotempty on dynamic properties and numbers;
  tostring(missing property) == ""; toint/tolong of a JSON number, a numeric
  string (null for "abc", 201.7 -> 201); dynamic access ObjectRef.resource and
  ObjectRef["resource"], nested paths; parse_json(string); set_has_element
  (case-sensitive, as in K); array_length; mv-expand (with `to typeof(string)`);
  not() (not(null) is null, so a row whose toint(code) is null fails both
  `toint(code) >= 400` and `not(toint(code) >= 400)`, as in K); null
  comparisons follow K (null != 5 is true, null > 3 is null -> row dropped);
  where, extend, project, project-away, let, summarize ... by (count(),
  min, max, make_set, make_list, dcount, take_any, arg_max, bin()), distinct,
  take, iff, strcat, tolower, pack/bag_pack, between, ago.
Refused (prints skip:): mv-apply ("MvapplyOperator"), ipv4_is_in_range,
  ipv4_is_match, ipv4_is_private, typeof()/gettype. Use set_has_element,
  has_any or mv-expand for arrays; no CIDR test can be evaluated here.
  Also refused (KqlSchemaError), though valid Kusto: a computed column whose
  name differs only in case from another (extend user = tostring(User.username)
  next to the User column). Name computed columns so they cannot collide
  case-insensitively (username, not user).
Wrong or unverified against Kusto:
  * a string column holding SQL NULL would be null in duckdb-kql (isnull true);
    Kusto strings are never null. This script stores "" instead, so string
    columns behave as in Kusto. Keep using isempty/isnotempty on strings.
  * dynamic(null) == "" is true in duckdb-kql; Kusto's result for comparing a
    missing dynamic property with "" is not verified: test missing properties
    with isnull()/isempty(), never with == "".
  * case folding beyond ASCII: duckdb lower-cases "İ" to "i" (=~ "istanbul"
    matches "İstanbul"); .NET/Kusto folding of such characters is not verified.
    "straße" =~ "STRASSE" is false in both.
  * make_set order is duckdb's (sorted), Kusto's is unspecified.
  * ago()/now() use the machine clock; rows carry the record's own time.
"""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMAS = os.path.join(HERE, "kql", "schemas.json")
TABLES = ("AKSAudit", "AKSAuditAdmin", "AzureDiagnostics", "AzureActivity", "GCPAuditLogs")
DUCK = {"string": "VARCHAR", "datetime": "TIMESTAMP", "dynamic": "JSON", "int": "INTEGER",
        "long": "BIGINT", "real": "DOUBLE", "bool": "BOOLEAN", "guid": "VARCHAR"}
AKS_EVENT_COLUMNS = {
    "level": "Level", "auditID": "AuditId", "stage": "Stage", "requestURI": "RequestUri",
    "verb": "Verb", "user": "User", "sourceIPs": "SourceIps", "userAgent": "UserAgent",
    "objectRef": "ObjectRef", "responseStatus": "ResponseStatus",
    "requestObject": "RequestObject", "responseObject": "ResponseObject",
    "requestReceivedTimestamp": "RequestReceivedTime", "stageTimestamp": "StageReceivedTime",
    "annotations": "Annotations",
}
ADMIN_EXCLUDED_VERBS = {"get", "list"}


class NoRow(Exception):
    """The record never reaches the table."""


class BadRecord(Exception):
    """The record cannot be converted (not the shape the table's source sends)."""


def usage(msg=None):
    if msg:
        print(f"kql_eval: {msg}", file=sys.stderr)
    print(__doc__.split("\n\n")[1].strip(), file=sys.stderr)
    return 2


def ci_get(d, *names):
    """Top-level key lookup, exact name first, then case-insensitive."""
    if not isinstance(d, dict):
        return None
    for n in names:
        if n in d:
            return d[n]
    low = {k.lower(): v for k, v in d.items()}
    for n in names:
        if n.lower() in low:
            return low[n.lower()]
    return None


def dig(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def text(v):
    """A value for a string column: "" for null, JSON text for objects."""
    if v is None:
        return ""
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"))
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def resource_parts(rid):
    """SubscriptionId, ResourceGroup, provider, type, name from an ARM id."""
    parts = [p for p in (rid or "").split("/") if p]
    low = [p.lower() for p in parts]
    out = {}

    def after(key):
        return parts[low.index(key) + 1] if key in low and low.index(key) + 1 < len(parts) else ""
    out["sub"] = after("subscriptions")
    out["rg"] = after("resourcegroups")
    out["provider"] = after("providers")
    if "providers" in low:
        i = low.index("providers")
        out["type"] = parts[i + 2] if i + 2 < len(parts) else ""
        out["name"] = parts[i + 3] if i + 3 < len(parts) else ""
    else:
        out["type"] = out["name"] = ""
    return out


def aks_event(rec):
    log = dig(rec, "properties", "log")
    if isinstance(log, str):
        try:
            log = json.loads(log)
        except ValueError as e:
            raise BadRecord(f"properties.log is not an audit Event (JSON): {e}") from None
    if not isinstance(log, dict):
        raise BadRecord("properties.log is missing")
    return log


def row_aks(rec, table, any_category):
    cat = ci_get(rec, "category")
    audit = ("kube-audit", "kube-audit-admin")
    want = ("kube-audit",) if table == "AKSAudit" else ("kube-audit-admin",)
    if cat not in (audit if any_category else want):
        raise NoRow(f"category {cat!r} is not stored in {table}")
    ev = aks_event(rec)
    if table == "AKSAuditAdmin" and str(ev.get("verb", "")).lower() in ADMIN_EXCLUDED_VERBS:
        raise NoRow(f"verb {ev.get('verb')!r} is not stored in AKSAuditAdmin")
    row = {col: ev.get(key) for key, col in AKS_EVENT_COLUMNS.items()}
    row.update(PodName=dig(rec, "properties", "pod"), TimeGenerated=ci_get(rec, "time"),
               _ResourceId=ci_get(rec, "resourceId"), Type=table, SourceSystem="Azure")
    return row


def row_diagnostics(rec, _table, _any):
    props = ci_get(rec, "properties") or {}
    rid = ci_get(rec, "resourceId") or ""
    rp = resource_parts(rid)
    log = props.get("log") if isinstance(props, dict) else None
    return {
        "Category": ci_get(rec, "category"), "log_s": text(log),
        "pod_s": props.get("pod") if isinstance(props, dict) else None,
        "stream_s": props.get("stream") if isinstance(props, dict) else None,
        "containerID_s": props.get("containerID") if isinstance(props, dict) else None,
        "ccpNamespace_s": ci_get(rec, "ccpNamespace"),
        "OperationName": ci_get(rec, "operationName"), "TimeGenerated": ci_get(rec, "time"),
        "ResourceId": rid.upper(), "_ResourceId": rid, "SubscriptionId": rp["sub"].upper(),
        "ResourceGroup": rp["rg"].upper(), "ResourceProvider": rp["provider"].upper(),
        "ResourceType": rp["type"].upper(), "Resource": rp["name"].upper(),
        "ResultType": ci_get(rec, "resultType"), "Level": ci_get(rec, "level"),
        "Type": "AzureDiagnostics", "SourceSystem": "Azure",
    }


def row_activity(rec, _table, _any):
    identity = ci_get(rec, "identity") or {}
    claims = identity.get("claims") if isinstance(identity, dict) else None
    authz = identity.get("authorization") if isinstance(identity, dict) else None
    caller = ci_get(rec, "caller")
    if caller is None and isinstance(claims, dict):
        for k in ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
                  "http://schemas.microsoft.com/identity/claims/objectidentifier", "appid"):
            if claims.get(k):
                caller = claims[k]
                break
    rid = ci_get(rec, "resourceId") or ""
    rp = resource_parts(rid)
    props = ci_get(rec, "properties")
    return {
        "OperationNameValue": ci_get(rec, "operationName"),
        "ActivityStatusValue": ci_get(rec, "resultType", "status"),
        "ActivitySubstatusValue": ci_get(rec, "resultSignature", "subStatus"),
        "CategoryValue": ci_get(rec, "category"),
        "CallerIpAddress": ci_get(rec, "callerIpAddress"), "Caller": caller,
        "CorrelationId": ci_get(rec, "correlationId"), "Level": ci_get(rec, "level"),
        "TimeGenerated": ci_get(rec, "time"), "ResourceId": rid, "_ResourceId": rid,
        "SubscriptionId": rp["sub"], "ResourceGroup": rp["rg"],
        "ResourceProviderValue": rp["provider"], "Resource": rp["name"],
        "Properties_d": props, "Properties": text(props) if props is not None else "",
        "Authorization_d": authz, "Authorization": text(authz) if authz is not None else "",
        "Claims_d": claims, "Claims": text(claims) if claims is not None else "",
        "HTTPRequest": text(ci_get(rec, "httpRequest")),
        "Type": "AzureActivity", "SourceSystem": "Azure",
    }


def row_gcp(rec, _table, _any):
    pp = rec.get("protoPayload")
    if not isinstance(pp, dict):
        raise BadRecord("no protoPayload: not a Cloud Audit Logs LogEntry")
    status = pp.get("status")
    return {
        "ServiceName": pp.get("serviceName"), "MethodName": pp.get("methodName"),
        "GCPResourceName": pp.get("resourceName"),
        "AuthenticationInfo": pp.get("authenticationInfo"),
        "PrincipalEmail": dig(pp, "authenticationInfo", "principalEmail"),
        "AuthorizationInfo": pp.get("authorizationInfo"),
        "RequestMetadata": pp.get("requestMetadata"), "Request": pp.get("request"),
        "Response": pp.get("response"), "Metadata": pp.get("metadata"), "Status": status,
        "StatusMessage": status.get("message") if isinstance(status, dict) else None,
        "NumResponseItems": pp.get("numResponseItems"),
        "ResourceLocation": pp.get("resourceLocation"),
        "ResourceOriginalState": pp.get("resourceOriginalState"),
        "ServiceData": pp.get("serviceData"),
        "GCPResourceType": dig(rec, "resource", "type"),
        "ProjectId": dig(rec, "resource", "labels", "project_id"),
        "LogName": rec.get("logName"), "InsertId": rec.get("insertId"),
        "Severity": rec.get("severity"), "Timestamp": rec.get("timestamp"),
        "TimeGenerated": rec.get("receiveTimestamp") or rec.get("timestamp"),
        "Type": "GCPAuditLogs",
    }


CONVERT = {"AKSAudit": row_aks, "AKSAuditAdmin": row_aks, "AzureDiagnostics": row_diagnostics,
           "AzureActivity": row_activity, "GCPAuditLogs": row_gcp}


def cell(value, ktype):
    if ktype == "string" or ktype == "guid":
        return text(value)
    if value is None:
        return None
    if ktype == "dynamic":
        return json.dumps(value)
    if ktype == "datetime":
        # ISO 8601 with Z and up to 7 fractional digits -> DuckDB TIMESTAMP text (UTC)
        m = re.match(r"^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]00:?00)?$", str(value))
        if not m:
            raise BadRecord(f"unparsable datetime {value!r}")
        return f"{m.group(1)} {m.group(2)}{(m.group(3) or '')[:7]}"
    if ktype in ("int", "long"):
        return int(value)
    if ktype == "real":
        return float(value)
    if ktype == "bool":
        return bool(value)
    return value


def verdicts(query, lines, table, any_audit_category=False):
    """One line per record (NDJSON `lines`, blank ones skipped): `true`,
    `false` or `skip: ...`; a `FAIL: ...` line ends it."""
    import duckdb
    import duckdb_kql as dk

    columns = json.load(open(SCHEMAS, encoding="utf-8"))["tables"][table]["columns"]
    names = list(columns)
    create = "CREATE OR REPLACE TABLE {} ({})".format(
        f'"{table}"', ", ".join(f'"{c}" {DUCK[t]}' for c, t in columns.items()))
    insert = 'INSERT INTO "{}" VALUES ({})'.format(table, ", ".join("?" * len(names)))

    # Syntax first: a query that does not parse is broken whatever the records.
    try:
        errs = dk.validate(query)
    except dk.KqlError as e:
        errs = [e]
    if errs:
        yield "FAIL: KQL syntax error:\n" + "\n".join(f"  {e}" for e in errs)
        return

    con = dk.connect()
    lines = [ln for ln in lines if ln.strip()]  # split on \n only (U+2028 may be in JSON)
    for n, line in enumerate(lines, 1):
        try:
            rec = json.loads(line)
        except ValueError as e:
            yield f"FAIL: record {n} is not JSON: {e}"
            return
        try:
            row = CONVERT[table](rec, table, any_audit_category)
            values = [cell(row.get(c), columns[c]) for c in names]
        except NoRow:
            yield "false"
            continue
        except BadRecord as e:
            yield f"FAIL: record {n}: {e}"
            return
        con.execute(create)
        con.execute(insert, values)
        try:
            got = dk.kql(con, query).fetchall()
        except (dk.KqlUnsupportedError, dk.KqlSchemaError) as e:
            yield f"skip: {e}"
            continue
        except dk.KqlSyntaxError as e:
            yield f"FAIL: KQL syntax error: {e}"
            return
        except (duckdb.BinderException, duckdb.CatalogException, duckdb.ParserException,
                duckdb.InvalidInputException) as e:
            # unknown column/table or an invalid regex: the query is broken
            yield f"FAIL: {type(e).__name__}: {str(e).splitlines()[0]}"
            return
        except duckdb.Error as e:
            yield f"skip: duckdb {type(e).__name__}: {str(e).splitlines()[0]}"
            continue
        yield "true" if got else "false"


def batch(request):
    """`--batch`: {"jobs": [{"query": Q, "table": T, "records": [...]}]} on stdin ->
    {"results": [{"verdicts": ["true"|"false"|"skip: ...", ...]} or {"error": "..."}]}
    (detc verify runs every query of a build in one process)."""
    results = []
    for job in request["jobs"]:
        if job["table"] not in TABLES:
            results.append({"error": f"unknown table {job['table']!r}"})
            continue
        lines = [json.dumps(r) for r in job["records"]]
        out = list(verdicts(job["query"], lines, job["table"], job.get("any_audit_category", False)))
        if out and out[-1].startswith("FAIL"):
            results.append({"error": out[-1]})
        else:
            results.append({"verdicts": out})
    return {"results": results}


def main(argv):
    import argparse

    if argv == ["--batch"]:
        print(json.dumps(batch(json.load(sys.stdin))))
        return 0

    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("query")
    ap.add_argument("records")
    ap.add_argument("--table", required=True)
    ap.add_argument("--any-audit-category", action="store_true")
    try:
        args = ap.parse_args(argv)
    except SystemExit:
        return usage()
    if args.table not in TABLES:
        return usage(f"unknown table {args.table!r} (one of {', '.join(TABLES)})")
    if args.query == "-" and args.records == "-":
        return usage("only one of QUERY and RECORDS can be stdin")
    try:
        query = sys.stdin.read() if args.query == "-" else open(args.query, encoding="utf-8").read()
        data = sys.stdin.read() if args.records == "-" else open(args.records, encoding="utf-8").read()
    except OSError as e:
        return usage(str(e))
    if not query.strip():
        print("FAIL: empty query")
        return 1

    for line in verdicts(query, data.split("\n"), args.table, args.any_audit_category):
        print(line)
        if line.startswith("FAIL"):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

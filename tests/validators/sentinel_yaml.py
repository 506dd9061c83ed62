#!/usr/bin/env python3
"""Check Microsoft Sentinel analytic-rule YAML against Azure-Sentinel's template schema.

usage: sentinel_yaml.py FILE.yaml [FILE.yaml ...]      (run with .venv/kql/bin/python)

Prints "OK   FILE" or "FAIL FILE:" followed by every problem ("    - ..."), and
"    warning: ..." lines that do not fail. Exit 0 when all pass, 1 if any
fails, 2 on usage errors.

The rules are those of Azure/Azure-Sentinel's PR check
.script/tests/detectionTemplateSchemaValidation (read 2026 at the commits in
brackets; the test converts the YAML to JSON and deserialises it with
Newtonsoft.Json into ScheduledTemplateInternalModel, then runs the
DataAnnotations validators):
  Models/AnalyticsTemplateInternalModelBase.cs [37b07060]: id (Guid, required),
    kind (required), name (required, <= 256 chars), description (required,
    <= 5000 chars), tactics (list of AttackTactic), relevantTechniques (list);
    class attribute NoTechniquesWithoutMatchingTactics.
  Models/AlertRuleKind.cs [c3b99ac4]: Scheduled | NRT (this script: Scheduled;
    NRT is accepted with a warning and skips the schedule checks, as the NRT
    model has no queryFrequency/queryPeriod/trigger keys).
  Models/ScheduledTemplateInternalModel.cs [749f8bfe]: requiredDataConnectors
    (required), severity (required, Informational|Low|Medium|High), query
    (required, 1..10000 chars), queryFrequency and queryPeriod (required,
    00:05:00 ..14.00:00:00), triggerOperator (required), triggerThreshold
    (required, int 0..10000), customDetails (<= 20 keys; key <= 20 chars and
    ^[a-zA-Z]+\\w*$; value <= 500 chars and ^[a-zA-Z_]+\\w*$), entityMappings
    (1..5 entries, 1..3 fieldMappings each); class attributes
    PeriodGreaterThanOrEqualFrequency, FrequencyLimitationForLongPeriodQuery
    (queryPeriod >= 2 days needs queryFrequency >= 1 hour), NewEntityMappings
    (a query using AccountCustomEntity/HostCustomEntity/IPCustomEntity/
    URLCustomEntity/ProcessCustomEntity/FileHashCustomEntity needs an entity
    mapping on that column).
  Models/ScheduledTemplateTimeSpanConverter.cs [7cc969c5]: a .NET TimeSpan
    ("01:00:00", "1.00:00:00") or <int><m|h|d> ("5m", "1h", "14d").
  Models/ScheduledTemplateTriggerOperatorConverter.cs [3ecd726e]: GreaterThan,
    LessThan, Equal, NotEqual, gt, lt, eq, ne.
  Models/DataConnectorInternalModel.cs [c3b99ac4]: each requiredDataConnectors
    entry: connectorId (string), dataTypes (list, required).
  Models/EntityMapping.cs, FieldMapping.cs: entityType (enum EntityType.cs),
    fieldMappings [{identifier, columnName}] both required.
  Models/ModelValidationAttributes/ValidEntityMappingsAttribute.cs [51be4ea9]
    and Models/EntityMappingIdentifiers.cs [9a09dab5]: identifier valid for the
    type, no identifier twice in one entity, columnName <= 500 chars and
    ^[a-zA-Z_]+\\w*$, and one of the type's required identifier sets present.
  Models/ModelValidationAttributes/KillChainTechniquesHelper.cs [cbdb7dfe]:
    each technique (sub-technique cut at ".") must map to a tactic listed in
    tactics (the technique->tactic table is copied below for the techniques it
    knows; an unknown technique fails, as in the C#).
  Models/QueryBasedTemplateInternalModel.cs + QueryBasedTemplateVersionValidator.cs
    [20eca6a0, 1b4ccf67]: version <= 20 chars, ^(\\d+\\.)(\\d+\\.)(\\d+)$.
  Models/EventGroupingSettings.cs [c8941499]: aggregationKind SingleAlert |
    AlertPerResult (required inside eventGroupingSettings).
Stricter than the C# model, on purpose (detc output must be exact):
  enum values must match case exactly (Newtonsoft would accept "high");
  version is required (the repository's contribution guide asks for it);
  relevantTechniques must match ^T\\d{4}(\\.\\d{3})?$.
Unknown top-level keys are NOT rejected by the repository (Newtonsoft ignores
them); they are reported here as warnings. The connector-id check
(ValidConnectorIds.json, 800+ ids) is not copied: connectorId is only checked
to be a non-empty string.
"""
import re
import sys
import uuid

import yaml

SEVERITIES = ("Informational", "Low", "Medium", "High")
KINDS = ("Scheduled", "NRT")
TRIGGER_OPERATORS = ("GreaterThan", "LessThan", "Equal", "NotEqual", "gt", "lt", "eq", "ne")
# AttackTactic.cs [b50e8354] lists the first 13; Tactic.cs [37b07060] adds the
# last four, which published templates use (Reconnaissance, ResourceDevelopment).
TACTICS = ("InitialAccess", "Execution", "Persistence", "PrivilegeEscalation", "DefenseEvasion",
           "CredentialAccess", "Discovery", "LateralMovement", "Collection", "Exfiltration",
           "CommandAndControl", "Impact", "PreAttack", "Reconnaissance", "ResourceDevelopment",
           "ImpairProcessControl", "InhibitResponseFunction")
AGGREGATION_KINDS = ("SingleAlert", "AlertPerResult")
# EntityMappingIdentifiers.cs [9a09dab5]: type -> (identifiers, required identifier sets)
ENTITY_IDENTIFIERS = {
    "Account": (("Name", "FullName", "NTDomain", "DnsDomain", "UPNSuffix", "Sid", "AadTenantId",
                 "AadUserId", "PUID", "IsDomainJoined", "DisplayName", "ObjectGuid", "CloudAppAccountId"),
                (("FullName",), ("Sid",), ("Name",), ("AadUserId",), ("PUID",), ("ObjectGuid",))),
    "AzureResource": (("ResourceId",), (("ResourceId",),)),
    "CloudApplication": (("AppId", "Name", "InstanceName"), (("AppId",), ("Name",))),
    "DNS": (("DomainName",), (("DomainName",),)),
    "File": (("Directory", "Name"), (("Name",),)),
    "FileHash": (("Algorithm", "Value"), (("Algorithm", "Value"),)),
    "Host": (("DnsDomain", "NTDomain", "HostName", "FullName", "NetBiosName", "AzureID", "OMSAgentID",
              "OSFamily", "OSVersion", "IsDomainJoined"),
             (("FullName",), ("HostName",), ("NetBiosName",), ("AzureID",), ("OMSAgentID",))),
    "IoTDevice": (("DeviceId", "DeviceName", "Manufacturer", "Model", "FirmwareVersion", "OperatingSystem",
                   "MacAddress", "Protocols", "SerialNumber", "Source", "IoTSecurityAgentId", "DeviceType"),
                  (("DeviceId",),)),
    "IP": (("Address",), (("Address",),)),
    "Mailbox": (("MailboxPrimaryAddress", "DisplayName", "Upn", "ExternalDirectoryObjectId", "RiskLevel"),
                (("MailboxPrimaryAddress",),)),
    "Malware": (("Name", "Category"), (("Name",),)),
    "Process": (("ProcessId", "CommandLine", "ElevationToken", "CreationTimeUtc"),
                (("CommandLine",), ("ProcessId",))),
    "RegistryKey": (("Hive", "Key"), (("Key",), ("Hive",))),
    "RegistryValue": (("Name", "Value", "ValueType"), (("Name",),)),
    "SecurityGroup": (("DistinguishedName", "SID", "ObjectGuid"),
                      (("DistinguishedName",), ("SID",), ("ObjectGuid",))),
    "URL": (("Url",), (("Url",),)),
}
# MailCluster, MailMessage, SubmissionMail exist too; detc does not emit them.
OLD_ENTITY_COLUMNS = ("AccountCustomEntity", "HostCustomEntity", "IPCustomEntity", "URLCustomEntity",
                      "ProcessCustomEntity", "FileHashCustomEntity")
# KillChainTechniquesHelper.cs [cbdb7dfe]: tactic -> techniques (enterprise ids only)
TECHNIQUES = {
    "PreAttack": "T1583 T1584 T1585 T1586 T1587 T1588 T1589 T1590 T1591 T1592 T1593 T1594 T1595 T1596 T1597 T1598",
    "InitialAccess": "T1078 T1091 T1133 T1195 T1199 T1200 T1189 T1190 T1566",
    "Persistence": "T1037 T1053 T1078 T1098 T1136 T1137 T1176 T1197 T1133 T1205 T1505 T1525 T1542 T1543 "
                   "T1546 T1547 T1554 T1574 T1556",
    "PrivilegeEscalation": "T1037 T1053 T1055 T1068 T1078 T1134 T1484 T1543 T1546 T1547 T1548 T1574 T1611",
    "DefenseEvasion": "T1006 T1014 T1027 T1036 T1055 T1070 T1078 T1112 T1127 T1134 T1140 T1197 T1202 "
                      "T1205 T1207 T1211 T1216 T1218 T1220 T1221 T1222 T1480 T1484 T1497 T1535 T1542 "
                      "T1548 T1550 T1553 T1556 T1562 T1564 T1574 T1578 T1599 T1600 T1601 T1612 T1610",
    "CredentialAccess": "T1003 T1040 T1056 T1110 T1111 T1187 T1212 T1528 T1539 T1552 T1555 T1556 T1557 "
                        "T1558 T1606 T1613 T1614 T1621",
    "Discovery": "T1007 T1010 T1012 T1016 T1018 T1033 T1040 T1046 T1049 T1057 T1069 T1082 T1083 T1087 "
                 "T1120 T1124 T1135 T1201 T1217 T1482 T1497 T1518 T1526 T1538 T1580",
    "LateralMovement": "T1021 T1072 T1080 T1091 T1210 T1534 T1550 T1563 T1570",
    "Execution": "T1047 T1053 T1059 T1072 T1106 T1129 T1203 T1204 T1559 T1569",
    "Collection": "T1005 T1025 T1039 T1056 T1074 T1113 T1114 T1115 T1119 T1123 T1125 T1185 T1213 T1530 "
                  "T1557 T1560 T1602 T1609 T1610",
    "Exfiltration": "T1011 T1020 T1029 T1030 T1041 T1048 T1052 T1537 T1567",
    "CommandAndControl": "T1001 T1008 T1071 T1090 T1092 T1095 T1102 T1104 T1105 T1132 T1205 T1219 T1568 "
                         "T1571 T1572 T1573",
    "Impact": "T1485 T1486 T1489 T1490 T1491 T1495 T1496 T1498 T1499 T1529 T1531 T1561 T1565",
    "Reconnaissance": "T1595 T1592 T1589 T1590 T1591 T1598 T1597 T1596 T1593 T1594",
    "ResourceDevelopment": "T1583 T1586 T1584 T1587 T1585 T1588 T1608",
}
TECHNIQUE_TACTICS = {}
for _tactic, _ids in TECHNIQUES.items():
    for _t in _ids.split():
        TECHNIQUE_TACTICS.setdefault(_t, set()).add(_tactic)
# Keys published templates use (Azure-Sentinel's template guidance); others only warn.
KNOWN_KEYS = {"id", "name", "description", "severity", "status", "requiredDataConnectors", "queryFrequency",
              "queryPeriod", "triggerOperator", "triggerThreshold", "tactics", "relevantTechniques", "query",
              "entityMappings", "customDetails", "alertDetailsOverride", "eventGroupingSettings",
              "incidentConfiguration", "version", "kind", "tags", "metadata", "suppressionDuration",
              "suppressionEnabled", "sentinelEntitiesMappings", "subTechniques"}
COLUMN_RE = re.compile(r"^[a-zA-Z_]+\w*$")
CUSTOM_KEY_RE = re.compile(r"^[a-zA-Z]+\w*$")
VERSION_RE = re.compile(r"^(\d+\.)(\d+\.)(\d+)$")
TECHNIQUE_RE = re.compile(r"^T\d{4}(\.\d{3})?$")
TIMESPAN_RE = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?$")
MIN_SPAN, MAX_SPAN = 5 * 60, 14 * 86400


def timespan(value):
    """Seconds, as ScheduledTemplateTimeSpanConverter reads the value, or None."""
    if isinstance(value, bool) or not isinstance(value, str):
        return None
    m = TIMESPAN_RE.match(value)
    if m:  # .NET TimeSpan.TryParse: [d.]hh:mm[:ss[.fff]]
        d, h, mi, s = (int(x or 0) for x in m.groups())
        if h > 23 or mi > 59 or s > 59:
            return None
        return ((d * 24 + h) * 60 + mi) * 60 + s
    m = re.match(r"^(\d+)([mhd])$", value)
    if not m:
        return None
    return int(m.group(1)) * {"m": 60, "h": 3600, "d": 86400}[m.group(2)]


def check(doc):
    errs, warns = [], []
    if not isinstance(doc, dict):
        return ["the document is not a YAML mapping"], warns

    def req(key):
        if key not in doc or doc[key] is None:
            errs.append(f"missing required key '{key}'")
            return False
        return True

    kind = doc.get("kind")
    for k in ("id", "kind", "name", "description", "severity", "query", "requiredDataConnectors", "version"):
        req(k)
    scheduled = kind == "Scheduled"
    if kind is not None and kind not in KINDS:
        errs.append(f"kind {kind!r} is not Scheduled or NRT")
    if kind == "NRT":
        warns.append("kind NRT: the schedule keys are not checked")
    if scheduled:
        for k in ("queryFrequency", "queryPeriod", "triggerOperator", "triggerThreshold"):
            req(k)
    for k in sorted(set(doc) - KNOWN_KEYS):
        warns.append(f"unknown top-level key '{k}' (Azure-Sentinel's check ignores it)")

    if "id" in doc:
        try:
            uuid.UUID(str(doc["id"]))
            if not re.match(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$", str(doc["id"])):
                raise ValueError
        except ValueError:
            errs.append(f"id {doc['id']!r} is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
    for k, limit in (("name", 256), ("description", 5000)):
        v = doc.get(k)
        if v is not None and (not isinstance(v, str) or len(v) > limit):
            errs.append(f"{k} must be a string of at most {limit} characters")
    if "severity" in doc and doc["severity"] not in SEVERITIES:
        errs.append(f"severity {doc['severity']!r} is not one of {'|'.join(SEVERITIES)}")
    q = doc.get("query")
    if q is not None and (not isinstance(q, str) or not 1 <= len(q) <= 10000):
        errs.append(f"query must be a string of 1..10000 characters (has {len(q) if isinstance(q, str) else type(q).__name__})")
    v = doc.get("version")
    if v is not None and (not isinstance(v, str) or len(v) > 20 or not VERSION_RE.match(v)):
        errs.append(f"version {v!r} must be a string X.Y.Z (all numbers, <= 20 characters)")

    spans = {}
    for k in ("queryFrequency", "queryPeriod"):
        if doc.get(k) is None:
            continue
        s = timespan(doc[k])
        if s is None:
            errs.append(f"{k} {doc[k]!r} is not <int><m|h|d> (e.g. 5m, 1h, 14d) or a TimeSpan (01:00:00)")
        elif not MIN_SPAN <= s <= MAX_SPAN:
            errs.append(f"{k} {doc[k]!r} is outside 5 minutes .. 14 days")
        else:
            spans[k] = s
    if len(spans) == 2:
        if spans["queryPeriod"] < spans["queryFrequency"]:
            errs.append("queryPeriod must be greater than or equal to queryFrequency")
        if spans["queryPeriod"] >= 2 * 86400 and spans["queryFrequency"] < 3600:
            errs.append("when queryPeriod >= 2 days, queryFrequency must be >= 1 hour")
    if doc.get("triggerOperator") is not None and doc["triggerOperator"] not in TRIGGER_OPERATORS:
        errs.append(f"triggerOperator {doc['triggerOperator']!r} is not one of {', '.join(TRIGGER_OPERATORS)}")
    t = doc.get("triggerThreshold")
    if t is not None and (isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= 10000):
        errs.append(f"triggerThreshold {t!r} must be an integer 0..10000")

    rdc = doc.get("requiredDataConnectors")
    if rdc is not None:
        if not isinstance(rdc, list):
            errs.append("requiredDataConnectors must be a list")
        else:
            for i, c in enumerate(rdc):
                if not isinstance(c, dict):
                    errs.append(f"requiredDataConnectors[{i}] must be a mapping")
                    continue
                if not isinstance(c.get("connectorId"), str) or not c["connectorId"]:
                    errs.append(f"requiredDataConnectors[{i}].connectorId must be a non-empty string")
                dt = c.get("dataTypes")
                if not isinstance(dt, list) or not dt or not all(isinstance(x, str) and x for x in dt):
                    errs.append(f"requiredDataConnectors[{i}].dataTypes must be a non-empty list of strings")
                for extra in sorted(set(c) - {"connectorId", "dataTypes"}):
                    warns.append(f"requiredDataConnectors[{i}]: unknown key '{extra}'")

    tactics = doc.get("tactics")
    if tactics is not None:
        if not isinstance(tactics, list):
            errs.append("tactics must be a list")
            tactics = []
        for ta in tactics:
            if ta not in TACTICS:
                errs.append(f"tactic {ta!r} is not one of {', '.join(TACTICS)}")
    techs = doc.get("relevantTechniques")
    if techs is not None:
        if not isinstance(techs, list):
            errs.append("relevantTechniques must be a list")
            techs = []
        for te in techs:
            if not isinstance(te, str) or not TECHNIQUE_RE.match(te):
                errs.append(f"technique {te!r} does not match T####[.###]")
                continue
            known = TECHNIQUE_TACTICS.get(te.split(".")[0], set())
            if not known & set(tactics or []):
                errs.append(f"no tactic for technique {te} in tactics "
                            f"(Azure-Sentinel maps it to: {', '.join(sorted(known)) or 'nothing, unknown technique'})")

    em = doc.get("entityMappings")
    if em is not None:
        if not isinstance(em, list) or not 1 <= len(em) <= 5:
            errs.append("entityMappings must be a list of 1..5 entries")
            em = em if isinstance(em, list) else []
        for i, e in enumerate(em):
            where = f"entityMappings[{i}]"
            if not isinstance(e, dict):
                errs.append(f"{where} must be a mapping")
                continue
            et = e.get("entityType")
            if et not in ENTITY_IDENTIFIERS:
                errs.append(f"{where}.entityType {et!r} is not one of {', '.join(sorted(ENTITY_IDENTIFIERS))}")
                continue
            fms = e.get("fieldMappings")
            if not isinstance(fms, list) or not 1 <= len(fms) <= 3:
                errs.append(f"{where}.fieldMappings must be a list of 1..3 entries")
                continue
            valid, required = ENTITY_IDENTIFIERS[et]
            used = set()
            for j, fm in enumerate(fms):
                if not isinstance(fm, dict) or "identifier" not in fm or "columnName" not in fm:
                    errs.append(f"{where}.fieldMappings[{j}] needs identifier and columnName")
                    continue
                ident, col = fm["identifier"], fm["columnName"]
                if ident not in valid:
                    errs.append(f"{where}: identifier {ident!r} is not valid for {et} ({', '.join(valid)})")
                if ident in used:
                    errs.append(f"{where}: identifier {ident!r} is used twice")
                used.add(ident)
                if not isinstance(col, str) or len(col) > 500 or not COLUMN_RE.match(col):
                    errs.append(f"{where}: columnName {col!r} must match ^[a-zA-Z_]+\\w*$ (<= 500 characters)")
            if not any(all(r in used for r in combo) for combo in required):
                errs.append(f"{where}: {et} needs one of the identifier sets "
                            + "; ".join(", ".join(c) for c in required))
    if isinstance(q, str):
        mapped = {fm.get("columnName") for e in (em or []) if isinstance(e, dict)
                  for fm in (e.get("fieldMappings") or []) if isinstance(fm, dict)}
        for old in OLD_ENTITY_COLUMNS:
            if old in q and old not in mapped:
                errs.append(f"the query uses {old} without an entity mapping on it")

    cd = doc.get("customDetails")
    if cd is not None:
        if not isinstance(cd, dict):
            errs.append("customDetails must be a mapping")
        else:
            if len(cd) > 20:
                errs.append(f"customDetails has {len(cd)} keys (at most 20)")
            for k, val in cd.items():
                if not isinstance(k, str) or len(k) > 20 or not CUSTOM_KEY_RE.match(k):
                    errs.append(f"customDetails key {k!r} must match ^[a-zA-Z]+\\w*$ (<= 20 characters)")
                if not isinstance(val, str) or len(val) > 500 or not COLUMN_RE.match(val):
                    errs.append(f"customDetails value {val!r} must be a column name ^[a-zA-Z_]+\\w*$ (<= 500 characters)")

    eg = doc.get("eventGroupingSettings")
    if eg is not None:
        if not isinstance(eg, dict) or eg.get("aggregationKind") not in AGGREGATION_KINDS:
            errs.append(f"eventGroupingSettings.aggregationKind must be one of {', '.join(AGGREGATION_KINDS)}")
    return errs, warns


def main(argv):
    if not argv or any(a.startswith("-") for a in argv):
        print(__doc__.split("\n\n")[1].strip(), file=sys.stderr)
        return 2
    failures = 0
    for name in argv:
        try:
            with open(name, encoding="utf-8") as f:
                doc = yaml.safe_load(f)
        except (OSError, yaml.YAMLError) as e:
            print(f"FAIL {name}:\n    - {e}")
            failures += 1
            continue
        errs, warns = check(doc)
        print(f"FAIL {name}:" if errs else f"OK   {name}")
        for e in errs:
            print(f"    - {e}")
        for w in warns:
            print(f"    warning: {w}")
        failures += bool(errs)
    if failures:
        print(f"sentinel_yaml: {failures} of {len(argv)} files failed")
        return 1
    print(f"sentinel_yaml: {len(argv)} files OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

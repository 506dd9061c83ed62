def rule(event):
    if event.get("verb") not in ("create", "update", "patch"):
        return False
    if event.deep_get("objectRef", "resource", default="") not in ("cronjobs", "jobs"):
        return False
    code = event.deep_get("responseStatus", "code", default=0)
    return 200 <= code < 300


def title(event):
    user = event.deep_get("user", "username", default="<unknown user>")
    name = event.deep_get("objectRef", "name", default="<unknown>")
    return f"Kubernetes CronJob/Job [{name}] changed by [{user}]"


def dedup(event):
    return event.deep_get("user", "username", default="<unknown user>")


def alert_context(event):
    return {
        "verb": event.get("verb"),
        "namespace": event.deep_get("objectRef", "namespace"),
        "source_ips": event.get("sourceIPs", []),
    }

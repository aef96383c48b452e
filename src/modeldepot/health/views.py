"""How health results are presented: alerts for problems, views for the API.

Pure functions from check results and statuses to the seed's shapes (``ModelHealth``,
``SystemHealth``) and to ``ModelHealthAlert`` events.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from modeldepot.availability.schemas import ModelStatus
from modeldepot.events import ModelHealthAlert
from modeldepot.health.integrity import IntegrityReport
from modeldepot.health.schemas import HealthCheckPublic, HealthIssue, ModelHealth, SystemHealth


def build_alert(check: HealthCheckPublic, report: IntegrityReport) -> ModelHealthAlert | None:
    """The alert for a check's report, or None when it found nothing wrong.

    wrong size/hash -> corruption_detected (critical, auto_repair); malformed only ->
    structure_invalid (critical; auto_repair, or none when the published file itself is
    malformed); missing or broken links only -> files_missing (warning, auto_repair; every
    file gone -> critical, redownload).
    """
    kinds = {i.kind for i in report.issues}
    if not kinds:
        return None
    bad = ", ".join(f"{i.path} ({i.kind})" for i in report.issues[:3])
    more = f" and {len(report.issues) - 3} more" if len(report.issues) > 3 else ""
    files = f"{len(report.issues)} file{'s' if len(report.issues) != 1 else ''}"
    upstream = any("identical to the published" in r for r in report.recommendations)
    if kinds & {"wrong_size", "wrong_hash"}:
        alert_type, severity, action = "corruption_detected", "critical", "auto_repair"
        message = f"Corruption detected in {files} of {check.model_id}: {bad}{more}"
    elif "bad_structure" in kinds:
        alert_type, severity = "structure_invalid", "critical"
        action = "none" if upstream else "auto_repair"
        message = f"Malformed {files} in {check.model_id}: {bad}{more}"
    else:
        everything = report.overall_health == "missing"
        alert_type = "files_missing"
        severity = "critical" if everything else "warning"
        action = "redownload" if everything else "auto_repair"
        message = f"{files.capitalize()} of {check.model_id} missing: {bad}{more}"
    return ModelHealthAlert(
        model_id=check.model_id,
        alert_type=alert_type,
        severity=severity,
        message=message,
        recommended_action=action,
        check_id=check.check_id,
    )


def newest(*values: datetime | None) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def unverified_health(status: ModelStatus, perf: HealthCheckPublic | None) -> ModelHealth:
    """Health from the status's size-only observation (no integrity verdict yet)."""
    issues = [
        HealthIssue(path=p, kind="missing", detail="no file in the snapshot")
        for p in status.missing_files
    ]
    issues += [
        HealthIssue(path=p, kind="wrong_size", detail="size differs from the manifest")
        for p in status.wrong_size_files
    ]
    if status.current_version is None:
        health, advice = "missing", ["download the model"]
        issues = []
    elif status.wrong_size_files:
        health, advice = "corrupted", ["run repair (auto) to re-fetch the files of wrong size"]
    elif status.missing_files:
        health, advice = "degraded", ["run repair (auto) to fetch the missing files"]
    else:
        health, advice = "unknown", ["run a full health check to verify every file's hash"]
    return ModelHealth(
        model_id=status.model_id,
        overall_health=health,
        integrity_score=None,
        performance_score=perf.performance_score if perf is not None else None,
        last_check=perf.finished_at if perf is not None else None,
        issues=issues,
        recommendations=advice,
    )


def system_health(models: Iterable[ModelHealth]) -> SystemHealth:
    items = list(models)
    scores = [
        m.integrity_score
        for m in items
        if m.integrity_score is not None and m.overall_health != "missing"
    ]
    checks = [m.last_check for m in items if m.last_check is not None]
    return SystemHealth(
        overall_score=round(sum(scores) / len(scores), 6) if scores else None,
        healthy_models=sum(m.overall_health == "healthy" for m in items),
        degraded_models=sum(m.overall_health == "degraded" for m in items),
        corrupted_models=sum(m.overall_health == "corrupted" for m in items),
        last_system_check=max(checks) if checks else None,
    )

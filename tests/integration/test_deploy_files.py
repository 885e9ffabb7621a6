"""The files under deploy/ agree with the service: the alert rules name metrics ``/metrics`` really
exports, and the systemd units and Kubernetes manifests give each process the time its shutdown
needs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from config.settings import PROJECT_ROOT
from workers.queues import ALL_QUEUES

DEPLOY = PROJECT_ROOT / "deploy"
METRIC = re.compile(r"\b(orders_[a-z0-9_]+)")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def exported_names(text: str) -> set[str]:
    """Every metric family and sample name of a Prometheus exposition."""
    names = set()
    for line in text.splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_every_metric_an_alert_names_is_exported(client) -> None:
    rules = yaml.safe_load((DEPLOY / "alerts.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert len(alerts) >= 8 and all({"alert", "expr", "annotations"} <= set(rule) for rule in alerts)
    exported = exported_names(client.simulate_get("/metrics").text)
    named = {name for rule in alerts for name in METRIC.findall(rule["expr"])}
    assert named >= {"orders_jobs_stalled", "orders_workers", "orders_beat_last_tick_timestamp_seconds"}
    missing = set()
    for name in named:
        base = next((name.removesuffix(suffix) for suffix in HISTOGRAM_SUFFIXES if name.endswith(suffix)), name)
        if name not in exported and base not in exported:
            missing.add(name)
    assert not missing, f"alerts name metrics /metrics does not export: {sorted(missing)}"


def service_section(path: Path) -> dict[str, list[str]]:
    """The ``[Service]`` settings of a unit file, each key with all its values in order."""
    section, found = None, {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def env_of(service: dict[str, list[str]]) -> dict[str, str]:
    return dict(value.split("=", 1) for value in service.get("Environment", []))


def test_systemd_units_stop_the_main_process_first_and_wait_long_enough() -> None:
    for path in sorted((DEPLOY / "systemd").glob("*.service")):
        service = service_section(path)
        assert service["KillMode"] == ["mixed"], path.name
        assert service["RestartPreventExitStatus"] == ["2"], path.name  # a configuration error
        stop = int(service["TimeoutStopSec"][-1])
        env = env_of(service)
        assert "PROMETHEUS_MULTIPROC_DIR" in env or "beat" in path.name, path.name
        if "worker" in path.name:
            assert stop > float(env["WORKER_SOFT_SHUTDOWN_SECONDS"]) + 10, path.name
            assert "%%h" in service["ExecStart"][0], "Celery's %h must be escaped from systemd"
        if "web" in path.name:
            assert stop > float(env["WEB_DRAIN_SECONDS"]) + 20, path.name


def manifests() -> list[dict[str, Any]]:
    found = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def container_env(deployment: dict[str, Any]) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item.get("value", "") for item in container.get("env", [])}


def test_kubernetes_grace_periods_and_probes_fit_the_shutdowns() -> None:
    deployments = {doc["metadata"]["name"]: doc for doc in manifests() if doc["kind"] == "Deployment"}
    served = set()
    for name, deployment in deployments.items():
        spec = deployment["spec"]["template"]["spec"]
        container = spec["containers"][0]
        grace = spec["terminationGracePeriodSeconds"] if "flower" not in name else 30
        env = container_env(deployment)
        if name.startswith("orders-worker-"):
            command = container["command"]
            served.add(command[command.index("--queues") + 1])
            assert grace > float(env["WORKER_SOFT_SHUTDOWN_SECONDS"]) + 10, name
            assert container["livenessProbe"]["exec"]["command"][:4] == ["python", "-m", "workers", "probe"]
        if name == "orders-web":
            drain = float(env["WEB_DRAIN_SECONDS"])
            assert grace > drain + 20
            readiness = container["readinessProbe"]
            assert readiness["httpGet"]["path"] == "/readyz"
            # the probe fails (and the pod leaves the endpoints) well within the drain
            assert readiness["periodSeconds"] * readiness["failureThreshold"] < drain
        if name == "orders-beat":
            assert deployment["spec"]["replicas"] >= 2  # RedBeat: one fires, one waits on the lock
            assert container["livenessProbe"]["exec"]["command"][3:5] == ["probe", "beat"]
    assert served == set(ALL_QUEUES)
    scaled = {doc["spec"]["scaleTargetRef"]["name"] for doc in manifests() if doc["kind"] == "ScaledObject"}
    assert scaled <= set(deployments)

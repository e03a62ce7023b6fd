"""Reading Prometheus text in tests, and the metric names the monitoring profile (deploy/) refers to."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"

# (sample name, its labels) -> value
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# The service's own metrics all start with loop_; PromQL's functions and Prometheus' own series (up) do not.
METRIC_NAME = re.compile(r"\bloop_[a-z0-9_]+\b")


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, labels: dict[str, str]) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (0 when there is none)."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


def declared_names(text: str) -> set[str]:
    """The family names (``# HELP``, also of a family without samples now) and sample names of an answer."""
    names = set(re.findall(r"^# HELP (\S+)", text, re.M))
    names |= {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    return names


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboards() -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))]


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in _panels(dashboard["panels"]) for target in panel.get("targets", [])]


def metric_names_in_profile() -> set[str]:
    """Every loop_ metric a rule or a dashboard panel of deploy/ names."""
    exprs = [str(rule["expr"]) for rule in rules()]
    exprs += [expr for dashboard in dashboards() for expr in dashboard_exprs(dashboard)]
    return {name for expr in exprs for name in METRIC_NAME.findall(expr)}

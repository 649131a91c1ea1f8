"""Parsers shared by the deployment checks: Dockerfile, compose YAML,
.dockerignore patterns, PromQL metric names. Small on purpose: each reads
only what the tests need, and fails loudly on anything it does not understand.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_CPU = ROOT / "docker-compose.cpu.yml"
PROMETHEUS = ROOT / "docker" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "docker" / "grafana"
K8S = ROOT / "deploy" / "k8s"
DOCS = ROOT / "docs" / "deployment.md"

#: The container port, the same everywhere (service's --port, EXPOSE, compose, Kubernetes).
SERVICE_PORT = 8000


# --------------------------------------------------------------------- Dockerfile


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, ...
    args: str  # the rest of the logical line, continuations joined
    line: int  # 1-based line number where it starts


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    """Logical instructions (comments dropped, backslash continuations joined)."""
    out: list[Instruction] = []
    buf: list[str] = []
    start = 0
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):  # comment lines inside a continuation are skipped
            continue
        if not buf:
            start = n
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        text = " ".join(part for part in buf if part)
        buf = []
        keyword, _, args = text.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), start))
    assert not buf, f"{path}: dangling line continuation"
    return out


def dockerfile_stages(path: Path = DOCKERFILE) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults (before the first FROM) and the stages in order."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for ins in dockerfile_instructions(path):
        if ins.keyword == "FROM":
            parts = ins.args.split()
            parts = [p for p in parts if not p.startswith("--platform")]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
        elif not stages:
            assert ins.keyword == "ARG", f"only ARG may precede the first FROM, not {ins.keyword}"
            key, _, value = ins.args.partition("=")
            global_args[key.strip()] = value.strip().strip('"')
        else:
            stages[-1].instructions.append(ins)
    return global_args, stages


def expand(text: str, args: dict[str, str]) -> str:
    """Substitute ${NAME} / $NAME with ARG defaults (as docker build does without --build-arg)."""
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), text)


def exec_form(ins: Instruction) -> list[str]:
    """The JSON array of an exec-form instruction; fails on shell form."""
    try:
        value = json.loads(ins.args)
    except json.JSONDecodeError as exc:  # pragma: no cover - the assertion message is the point
        raise AssertionError(f"{ins.keyword} on line {ins.line} is not in exec (JSON) form: {ins.args!r}") from exc
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"{ins.keyword} must be a JSON list of strings"
    return value


def parse_flags(args: str) -> tuple[dict[str, str], str]:
    """Split leading --flag=value options (HEALTHCHECK, COPY) from the rest."""
    flags: dict[str, str] = {}
    rest = args
    while rest.startswith("--"):
        token, _, rest = rest.partition(" ")
        key, _, value = token[2:].partition("=")
        flags[key] = value
        rest = rest.lstrip()
    return flags, rest


def env_pairs(ins: Instruction) -> dict[str, str]:
    """KEY=VALUE pairs of an ENV instruction (the modern form only)."""
    pairs = {}
    for token in shlex.split(ins.args):
        key, sep, value = token.partition("=")
        assert sep, f"ENV on line {ins.line}: use KEY=VALUE, not the legacy 'ENV KEY VALUE' form"
        pairs[key] = value
    return pairs


def duration_s(value: str | int | float) -> float:
    """'1m30s', '120s', '500ms', 45 -> seconds (Docker/compose/Go duration syntax)."""
    if isinstance(value, (int, float)):
        return float(value)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
    total, pos = 0.0, 0
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", value):
        assert m.start() == pos, f"bad duration {value!r}"
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    assert pos == len(value) and pos > 0, f"bad duration {value!r}"
    return total


# --------------------------------------------------------------------- YAML


class ComposeLoader(yaml.SafeLoader):
    """SafeLoader that understands compose's merge tags (!reset, !override)."""


class Reset:
    """Marks a value that compose's !reset tag removes when merging files."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _reset(loader: yaml.SafeLoader, node: yaml.Node) -> Reset:
    if isinstance(node, yaml.SequenceNode):
        return Reset(loader.construct_sequence(node))
    if isinstance(node, yaml.MappingNode):
        return Reset(loader.construct_mapping(node))
    return Reset(loader.construct_scalar(node))


def _override(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    return loader.construct_scalar(node)


ComposeLoader.add_constructor("!reset", _reset)
ComposeLoader.add_constructor("!override", _override)


def load_compose(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=ComposeLoader)  # noqa: S506 - a SafeLoader subclass


def strip_resets(value: Any) -> Any:
    """A compose file as the schema sees it on its own: !reset keys dropped."""
    if isinstance(value, dict):
        return {k: strip_resets(v) for k, v in value.items() if not isinstance(v, Reset)}
    if isinstance(value, list):
        return [strip_resets(v) for v in value]
    return value


def merge_compose(base: Any, override: Any) -> Any:
    """Compose's merge for the shapes used here: mappings merge, !reset removes, scalars and lists replace."""
    if isinstance(override, Reset):
        return None
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            if isinstance(value, Reset):
                merged.pop(key, None)
            else:
                merged[key] = merge_compose(base.get(key), value)
        return merged
    return override


_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[-?+]([^}]*))?\}")


def interpolate(value: Any) -> Any:
    """Resolve ${VAR:-default} to its default (an empty environment), as `docker compose config` would."""
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, str):
        return _INTERPOLATION.sub(lambda m: m.group(2) or "", value)
    return value


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s_resources() -> list[tuple[Path, dict[str, Any]]]:
    """Every Kubernetes object under deploy/k8s (kustomizations and Helm values excluded)."""
    out = []
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in load_yaml_documents(path):
            if "kind" in doc and "apiVersion" in doc and doc["kind"] != "Kustomization":
                out.append((path, doc))
    return out


def k8s_object(kind: str, name: str = "fersnet") -> dict[str, Any]:
    found = [doc for _, doc in k8s_resources() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name} under deploy/k8s, found {len(found)}"
    return found[0]


# --------------------------------------------------------------------- .dockerignore


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as moby/patternmatcher reads it (Go filepath.Match plus **)."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # "**/" matches zero or more directories
                i += 1
                out += "(?:.*/)?"
            else:
                out += ".*"
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = pattern.index("]", i)
            out += "[" + pattern[i + 1 : j].replace("!", "^", 1) + "]"
            i = j
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + r"\Z")


def dockerignore_rules(path: Path = DOCKERIGNORE) -> list[tuple[bool, re.Pattern[str], str]]:
    rules = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:].strip() if negate else line
        pattern = pattern.strip("/")
        pattern = re.sub(r"/+", "/", pattern)
        rules.append((negate, _pattern_regex(pattern), line))
    return rules


def is_excluded(rel: str, rules: list[tuple[bool, re.Pattern[str], str]]) -> bool:
    """Whether docker leaves the file at relative path `rel` out of the build context.

    Like moby's MatchesOrParentMatches: a pattern matches a file if it matches
    the file's path or any of its parent directories; the last matching
    pattern wins (a '!' pattern re-includes).
    """
    parts = rel.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negate, regex, _ in rules:
        if any(regex.match(c) for c in candidates):
            excluded = not negate
    return excluded


def build_context(root: Path = ROOT) -> list[str]:
    """Relative paths of the files `docker build` would send, given .dockerignore."""
    rules = dockerignore_rules()
    sent: list[str] = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        # Speed only: skip the large trees that the allow-list excludes wholesale.
        if rel.split("/")[0] in {".git", ".venv", "runs", "data"}:
            continue
        if path.is_file() and not is_excluded(rel, rules):
            sent.append(rel)
    return sent


# --------------------------------------------------------------------- PromQL

_PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
    "offset", "inf", "nan", "atan2",
}
_AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
    "quantile", "limitk", "limit_ratio",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def _closing_brace(text: str, start: int) -> int:
    """Index of the '}' closing the '{' at `start`, skipping quoted label values."""
    i = start + 1
    while i < len(text):
        if text[i] in "\"'`":
            quote, i = text[i], i + 1
            while text[i] != quote:
                i += 2 if text[i] == "\\" else 1
        elif text[i] == "}":
            return i
        i += 1
    raise AssertionError(f"unclosed '{{' in {text!r}")


@dataclass
class Selector:
    metric: str
    labels: list[str]  # label names used in the {...} matcher


def promql_selectors(expr: str) -> tuple[list[Selector], list[str]]:
    """Metric selectors and grouping labels (by/without/on/ignoring lists) in a PromQL expression.

    A tokenizer, not a parser: strings, durations and label matchers are cut
    out, function names are recognised by the '(' that follows, and what is
    left are metric names. Grafana's $variables are treated as opaque.
    """
    selectors: list[Selector] = []
    groupings: list[str] = []
    text = re.sub(r"\$__\w+|\$\{?\w+\}?", "1", expr)  # Grafana variables outside strings
    i = 0
    pending: Selector | None = None
    while i < len(text):
        c = text[i]
        if c in "\"'`":
            j = text.index(c, i + 1)
            i = j + 1
            continue
        if c == "[":  # range or subquery duration
            i = text.index("]", i) + 1
            continue
        if c == "{":
            j = _closing_brace(text, i)
            body = re.sub(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'", '""', text[i + 1 : j])
            labels = [m.group(1) for m in re.finditer(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", body)]
            if pending is not None:
                pending.labels.extend(labels)
            else:  # {__name__=...} style selector without a leading name
                raise AssertionError(f"selector without a metric name in {expr!r}")
            pending = None
            i = j + 1
            continue
        num = re.match(r"(?:0x[0-9a-fA-F]+|\d*\.?\d+(?:[eE][+-]?\d+)?)[A-Za-z]*", text[i:]) if (c.isdigit() or c == ".") else None
        if num and num.group(0):  # a number or a duration such as 5m (offset)
            i += len(num.group(0))
            pending = None
            continue
        m = re.match(r"[A-Za-z_:][\w:]*", text[i:])
        if m:
            word = m.group(0)
            i += len(word)
            rest = text[i:].lstrip()
            if word.lower() in {"by", "without", "on", "ignoring", "group_left", "group_right"} and rest.startswith("("):
                j = text.index(")", i)
                groupings.extend(w.strip() for w in text[text.index("(", i) + 1 : j].split(",") if w.strip())
                i = j + 1
                pending = None
                continue
            if rest.startswith("(") or word.lower() in _AGGREGATIONS:  # a function or aggregation
                pending = None
                continue
            if word.lower() in _PROMQL_KEYWORDS:
                pending = None
                continue
            pending = Selector(word, [])
            selectors.append(pending)
            continue
        if not c.isspace():
            pending = None
        i += 1
    return selectors, groupings


def base_metric(name: str, histograms: set[str]) -> str:
    """fersnet_x_bucket -> fersnet_x when fersnet_x is a histogram."""
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in histograms:
            return name[: -len(suffix)]
    return name

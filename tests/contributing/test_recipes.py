"""CONTRIBUTING.md's recipes work: each one's code blocks, taken from the page as written, run end to end.

A block belongs to a recipe when an HTML comment ``<!-- recipe: NAME -->`` stands on the line before its fence.
The four recipes run on real data (the lab recording in ``examples/lab``), then their effect is asserted:

- cause: a cause beyond the 14 built-in ones is registered, ``classify`` with the recipe's rule names it for the
  lab's SIGKILL exit, its remediation is the incident's, and the HTML report draws it in its colour;
- plugin: the grammar, installed as a distribution with an entry point, parses a PHP error log in ``replay``
  (stack traces assembled into their entries) and is an input ``type`` the service's config accepts;
- sink: a sink behind a ``Router`` receives the lab recording's 41 incidents;
- kafka-backend: a backend registered under a new name is what ``kafka.client = "<name>"`` chooses, and (on the
  real broker, marked ``kafka``) the recipe's launcher runs the service on it over the lab recording.

The blocks pass mypy --strict and ruff with the project's settings, and the two pages (this one and
docs/ARCHITECTURE.md) name only files, modules and attributes that exist.
"""

from __future__ import annotations

import html
import importlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import tomllib
import types
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from processor import DiagnosisSettings, MemorySink, Record, SourceRef, build
from processor.cli.main import build_parser
from processor.cli.report_html import render_html
from processor.core.errors import UserConfigError
from processor.diagnosis import causes, incident_making, join, registry
from processor.diagnosis.causes import Diagnosis
from processor.io.kafka.client import backend, backend_names, unregister_backend
from processor.runners.service_config import load_config
from processor.runners.stats import ReplayStats
from tests.fixtures.kafka import KafkaBroker

REPO = Path(__file__).resolve().parents[2]
CONTRIBUTING = REPO / "CONTRIBUTING.md"
ARCHITECTURE = REPO / "docs" / "ARCHITECTURE.md"
LAB = REPO / "examples" / "lab"
LAB_FILES = {
    "error.log": "nginx_error",
    "access.log": "nginx_access",
    "php-fpm.log": "php_fpm",
    "php-fpm-legacy.log": "php_fpm",
    "php-fpm-reports.log": "php_fpm",
}
LAB_INCIDENTS = 41
_BLOCK = re.compile(r"^<!-- recipe: ([a-z-]+) -->\n```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def recipe(name: str, language: str = "python") -> list[str]:
    """The code blocks of one recipe in one language, in page order."""
    found = [
        code
        for recipe_name, lang, code in _BLOCK.findall(CONTRIBUTING.read_text())
        if recipe_name == name and lang == language
    ]
    assert found, f"CONTRIBUTING.md has no {language} block marked <!-- recipe: {name} -->"
    return found


def run_block(code: str, name: str) -> dict[str, Any]:
    """Execute one block as a fresh module ``__main__`` would run it; its globals afterwards."""
    namespace: dict[str, Any] = {"__name__": f"recipe_{name.replace('-', '_')}"}
    exec(compile(code, f"CONTRIBUTING.md <recipe: {name}>", "exec"), namespace)
    return namespace


def lab_incidents() -> list[dict[str, Any]]:
    """The lab recording fed record by record, as examples/api_example.py feeds it."""
    pipeline, _ = build(
        DiagnosisSettings(
            nginx_conf=str(LAB / "conf" / "nginx.conf"),
            fpm_conf=tuple(str(p) for p in sorted((LAB / "conf").glob("php-fpm*.conf"))),
            allowed_lateness_s=60.0,
        )
    )
    sink = MemorySink()
    for name, log_type in LAB_FILES.items():
        fmt = "lab" if name == "access.log" else None
        for offset, line in enumerate((LAB / "logs" / name).read_text().splitlines()):
            for out in pipeline.feed(Record(line, SourceRef(name, offset, 0), log_type, "lab-host", fmt)):
                sink.write(out)
    for out in pipeline.flush():
        sink.write(out)
    return sink.incidents


# -- a cause ------------------------------------------------------------------------------------------------------


def classify_with_rule(rule: str) -> Any:
    """``causes.classify`` as it reads once the recipe's rule is pasted where the recipe says: before the
    ``if best is not None:`` whose block returns ``child_crash``. A fresh module; the installed one is untouched."""
    lines = Path(causes.__file__).read_text().splitlines(keepends=True)
    crash = [i for i, line in enumerate(lines) if line.strip() == 'return done("child_crash")']
    assert len(crash) == 1, "causes.classify no longer has one child_crash rule: update the recipe"
    at = max(i for i in range(crash[0]) if lines[i].strip() == "if best is not None:")
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    source = "".join([*lines[:at], textwrap.indent(rule, indent), *lines[at:]])
    module = types.ModuleType("processor.diagnosis.causes_with_recipe")
    module.__file__ = causes.__file__
    exec(compile(source, causes.__file__, "exec"), module.__dict__)
    return module.classify


def test_add_a_cause_classify_remediate_and_report_it(monkeypatch: pytest.MonkeyPatch) -> None:
    (register_block,) = recipe("cause")
    (rule,) = recipe("cause-rule")
    before = lab_incidents()
    try:
        namespace = run_block(register_block, "cause")
        assert registry.labels() == (*registry.BUILT_IN, "child_killed")
        added = registry.cause("child_killed")
        monkeypatch.setattr(incident_making, "classify", classify_with_rule(rule))  # the join calls it by this name
        incidents = lab_incidents()

        # the lab's SIGKILL exit now names the new cause; nothing else changed
        assert len(incidents) == len(before) == LAB_INCIDENTS
        by_cause = Counter(i["badgateway"]["cause"] for i in incidents)
        killed = [i for i in incidents if i["badgateway"]["cause"] == "child_killed"]
        assert len(killed) == 1
        assert by_cause["child_crash"] == Counter(i["badgateway"]["cause"] for i in before)["child_crash"] - 1
        (fpm,) = killed[0]["evidence"]["php_fpm"]
        assert fpm["fields"]["signal"] == 9 and fpm["fields"]["signal_name"] == "SIGKILL"

        # its remediation is the recipe's function of the diagnosis
        pool = killed[0]["php_fpm"]["pool"]
        diagnosis = Diagnosis("child_killed", 502, False, pool, "config", None, (), None)
        expected = namespace["child_killed"](diagnosis, join.Topology())
        assert killed[0]["badgateway"]["remediation"] == expected
        assert expected.startswith(f"A worker of pool {pool} was killed with SIGKILL")

        # the report draws it in its own colour, in the legend and the table
        page = render_html(incidents, ReplayStats(), "lab")
        assert f".cause-child_killed{{fill:{added.colour};background:{added.colour}}}" in page
        assert "child_killed (1)" in page
        assert html.escape(expected) in page
    finally:
        registry.unregister("child_killed")
    assert not registry.is_registered("child_killed")


# -- a log-format plugin ------------------------------------------------------------------------------------------

# what PHP wrote in the lab (quoted by NGINX's error log as FastCGI stderr), as its own error_log would have it
_PHP_MESSAGE = re.compile(
    r'^(\d{4})/(\d{2})/(\d{2}) (\d{2}:\d{2}:\d{2}) \[\w+\] .*?PHP message: (PHP .*?)" while ', re.MULTILINE | re.DOTALL
)
_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def php_error_log() -> list[str]:
    """The lab's PHP messages as entries of PHP's own error_log (``[24-Nov-2026 07:41:42 UTC] PHP …``)."""
    entries = []
    for year, month, day, clock, message in _PHP_MESSAGE.findall((LAB / "logs" / "error.log").read_text()):
        entries.append(f"[{day}-{_MONTHS[int(month) - 1]}-{year} {clock} UTC] {message}")
    return entries


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """The recipe's plugin installed as a distribution whose entry point is the recipe's pyproject table."""
    (module_code,) = recipe("plugin")
    (pyproject,) = recipe("plugin", "toml")
    points = tomllib.loads(pyproject)["project"]["entry-points"]["badgateway.grammars"]
    ((name, target),) = points.items()
    module = target.split(":")[0]
    site = tmp_path / "site"
    info = site / f"{module}-0.1.dist-info"
    info.mkdir(parents=True)
    (site / f"{module}.py").write_text(module_code)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[badgateway.grammars]\n{name} = {target}\n")
    monkeypatch.syspath_prepend(str(site))
    yield site, name
    sys.modules.pop(module, None)


def test_add_a_log_format_plugin_parses_in_replay_and_is_a_service_input_type(
    plugin_site: tuple[Path, str], tmp_path: Path
) -> None:
    site, name = plugin_site
    entries = php_error_log()
    assert len(entries) >= 3 and any("\nStack trace:\n" in e for e in entries)
    log = tmp_path / "php_errors.log"
    log.write_text("\n".join(entries) + "\n")
    out = {kind: tmp_path / f"{kind}.jsonl" for kind in ("incidents", "events", "dead")}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "processor.cli",
            "replay",
            "-q",
            "--type",
            name,
            str(log),
            "-o",
            str(out["incidents"]),
            "--events",
            str(out["events"]),
            "--dead-letter",
            str(out["dead"]),
        ],
        capture_output=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()

    events = [json.loads(line) for line in out["events"].read_text().splitlines()]
    assert out["dead"].read_text() == ""
    assert len(events) == len(entries)  # one event per entry: the stack-trace lines joined the entry before them
    fields = [e["badgateway"]["fields"] for e in events]
    assert [f"PHP {f['level']}:  {f['message']}" for f in fields] == [e.split("] ", 1)[1] for e in entries]
    assert {f["level"] for f in fields} >= {"Fatal error", "Warning"}
    assert all(e["@timestamp"].startswith("2026-11-24T07:41:") for e in events)

    listed = subprocess.run(
        [sys.executable, "-m", "processor.cli", "grammars"], capture_output=True, env=env, cwd=REPO, timeout=60
    )
    assert name in listed.stdout.decode()

    config = tmp_path / "badgateway.toml"
    config.write_text(f'[[inputs]]\ntopic = "php-errors"\ntype = "{name}"\n')
    assert load_config(str(config)).inputs[0].type == name


# -- a sink -------------------------------------------------------------------------------------------------------


def test_add_a_sink_receives_the_lab_incidents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (block,) = recipe("sink")
    (tmp_path / "examples").symlink_to(REPO / "examples")  # the block reads examples/lab from the repository root
    monkeypatch.chdir(tmp_path)
    run_block(block, "sink")

    with sqlite3.connect(tmp_path / "incidents.sqlite") as db:
        rows = db.execute("SELECT id, cause, doc FROM incident").fetchall()
    expected = lab_incidents()
    assert len(rows) == len(expected) == LAB_INCIDENTS
    assert {row[0] for row in rows} == {i["event"]["id"] for i in expected}
    assert all(json.loads(doc)["badgateway"]["cause"] == cause for _, cause, doc in rows)
    assert (tmp_path / "dead-letters.jsonl").read_text() == ""  # the lab's lines all parse
    printed = capsys.readouterr().out
    assert sum(int(line.split()[0]) for line in printed.splitlines()) == LAB_INCIDENTS


# -- a Kafka backend ----------------------------------------------------------------------------------------------


def test_add_a_kafka_backend_is_chosen_by_kafka_client(tmp_path: Path) -> None:
    block, _launcher = recipe("kafka-backend")
    config = tmp_path / "badgateway.toml"
    config.write_text('[kafka]\nclient = "kafka-python-metered"\n[[inputs]]\ntopic = "logs"\n')
    with pytest.raises(UserConfigError, match="kafka.client"):
        load_config(str(config))
    try:
        namespace = run_block(block, "kafka-backend")
        metered = namespace["METERED"]
        assert "kafka-python-metered" in backend_names()
        loaded = load_config(str(config))
        assert loaded.kafka.client == "kafka-python-metered"
        assert backend(loaded.kafka) is metered
        args = build_parser().parse_args(["follow", "x.log", "--kafka-client", "kafka-python-metered"])
        assert args.kafka_client == "kafka-python-metered"
    finally:
        unregister_backend("kafka-python-metered")
    with pytest.raises(UserConfigError, match="kafka.client"):
        load_config(str(config))


@pytest.mark.kafka
@pytest.mark.timeout(300)
def test_the_service_runs_on_the_added_backend_from_the_launcher(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    """The recipe's launcher starts ``run`` with ``kafka.client = "kafka-python-metered"`` on the real broker;
    the lab recording, produced to the input topics, comes out as its 41 incidents."""
    backend_module, launcher = recipe("kafka-backend")
    kafka_broker.start()
    tag = uuid.uuid4().hex[:8]
    inputs = {name: kafka_broker.create_topic(f"recipe-{i}-{tag}") for i, name in enumerate(LAB_FILES)}
    incidents_topic = kafka_broker.create_topic(f"recipe-incidents-{tag}")
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
    for name, topic in inputs.items():
        for line in (LAB / "logs" / name).read_text().splitlines():
            producer.send(topic, value=line.encode(), key=b"lab-host")
    producer.flush()
    producer.close()

    fpm_confs = [str(p) for p in sorted((LAB / "conf").glob("php-fpm*.conf"))]
    sections = "".join(
        f'[[inputs]]\ntopic = "{topic}"\ntype = "{LAB_FILES[name]}"\nenvelope = "raw"\nhost_from = "fixed:lab-host"\n'
        f'format = "{"lab" if name == "access.log" else ""}"\n\n'
        for name, topic in inputs.items()
    )
    (tmp_path / "badgateway.toml").write_text(
        f'[kafka]\nclient = "kafka-python-metered"\nbootstrap_servers = "{kafka_broker.bootstrap}"\n'
        f'group_id = "recipe-{tag}"\nsession_timeout_s = 6.0\n\n{sections}'
        f'[outputs]\nincidents_topic = "{incidents_topic}"\ndead_letter_topic = "recipe-dead-{tag}"\n\n'
        f'[diagnosis]\nnginx_conf = "{LAB / "conf" / "nginx.conf"}"\nfpm_conf = {json.dumps(fpm_confs)}\n'
        "allowed_lateness_s = 60.0\nidle_timeout_s = 0.0\n\n[delivery]\ncommit_interval_s = 0.5\n\n"
        "[metrics]\nport = 0\n"
    )
    (tmp_path / "my_backend.py").write_text(backend_module)
    (tmp_path / "launch.py").write_text(launcher)
    log_path = tmp_path / "service.log"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(log_path, "wb") as log:
        service = subprocess.Popen([sys.executable, "launch.py"], cwd=tmp_path, env=env, stdout=log, stderr=log)
    try:
        got = _read_incidents(kafka_broker.bootstrap, incidents_topic, LAB_INCIDENTS, service, log_path)
    finally:
        service.send_signal(signal.SIGTERM)
        code = service.wait(60)
    assert code == 0, log_path.read_text()[-3000:]
    assert {i["event"]["id"] for i in got} == {i["event"]["id"] for i in lab_incidents()}
    started = [
        doc
        for doc in (json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{"))
        if doc.get("event") == "service.started"
    ]
    assert [doc["client"] for doc in started] == ["kafka-python-metered"]


def _read_incidents(
    bootstrap: str, topic: str, n: int, service: subprocess.Popen[bytes], log_path: Path
) -> list[dict[str, Any]]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=500)
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + 120
    try:
        while len(got) < n:
            assert service.poll() is None, "the service exited:\n" + log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, f"{len(got)} of {n} incidents\n" + log_path.read_text()[-3000:]
            got += [json.loads(record.value) for record in consumer]
    finally:
        consumer.close()
    return got


# -- the recipes are code the project would accept ----------------------------------------------------------------


def test_the_recipes_pass_mypy_strict_and_ruff(tmp_path: Path) -> None:
    """Copied into a project, a recipe's block passes the same checks as the package (``make typecheck``,
    ``make lint``): the protocols it implements are the ones the code declares."""
    backend_module, launcher = recipe("kafka-backend")
    files = {
        "recipe_cause.py": recipe("cause")[0],
        "my_php_errors.py": recipe("plugin")[0],
        "recipe_sink.py": recipe("sink")[0],
        "my_backend.py": backend_module,
        "launch.py": launcher,
    }
    for name, code in files.items():
        (tmp_path / name).write_text(code)
    env = {**os.environ, "MYPYPATH": str(REPO)}
    mypy = [sys.executable, "-m", "mypy", "--strict", "--cache-dir", os.devnull, "--follow-imports", "silent"]
    proc = subprocess.run([*mypy, *files], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ruff = [sys.executable, "-m", "ruff", "--config", str(REPO / "pyproject.toml")]
    for command in (["check", "."], ["format", "--check", "."]):
        proc = subprocess.run([*ruff, *command], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr


# -- the pages name what exists -----------------------------------------------------------------------------------

_PATH = re.compile(r"(?<![\w./-])((?:processor|grammars|tests|benchmarks|examples|docs|scripts|\.ci)/[\w./-]*\w)")
_DOTTED = re.compile(r"`((?:processor|grammars)(?:\.\w+)+)")


@pytest.mark.parametrize("page", [ARCHITECTURE, CONTRIBUTING], ids=lambda p: p.name)
def test_every_path_and_module_named_exists(page: Path) -> None:
    text = page.read_text()
    paths = set(_PATH.findall(text))
    assert any(p.startswith("processor/") and p.endswith(".py") for p in paths)
    missing = sorted(p for p in paths if not (REPO / p).exists())
    assert not missing, f"{page.name} names paths that do not exist: {missing}"
    unresolved = sorted(name for name in set(_DOTTED.findall(text)) if not _resolves(name))
    assert not unresolved, f"{page.name} names modules or attributes that do not exist: {unresolved}"

    # "`build_incident` (`processor/diagnosis/incident.py`)": the name is there
    modules = {path: importlib.import_module(path[:-3].replace("/", ".")) for path in paths if _is_module(path)}
    wrong = sorted(
        f"{name} ({path})"
        for name, path in _NAME_IN.findall(text)
        if name not in _COMMANDS and not _has(modules[path], name)
    )
    assert not wrong, f"{page.name} places names in modules that do not hold them: {wrong}"
    # "`Pipeline.feed_block`": the class is one of the modules named on the page, and has that attribute
    classes = {n: c for m in modules.values() for n, c in vars(m).items() if isinstance(c, type)}
    wrong = sorted(
        f"{cls}.{attr}"
        for cls, attr in _METHOD.findall(text)
        if cls in classes or cls[0].isupper()
        if cls not in classes or not hasattr(classes[cls], attr)
    )
    assert not wrong, f"{page.name} names class attributes that do not exist: {wrong}"


_NAME_IN = re.compile(r"`(\w+(?:\.\w+)?)` \(`((?:processor|grammars)/[\w/]+\.py)`")
_METHOD = re.compile(r"`([A-Z]\w*)\.(\w+)`")
_COMMANDS = {"replay", "follow", "filter", "run"}


def _is_module(path: str) -> bool:
    return path.endswith(".py") and path.startswith(("processor/", "grammars/")) and (REPO / path).is_file()


def _has(module: types.ModuleType, dotted: str) -> bool:
    obj: Any = module
    for attr in dotted.split("."):
        if not hasattr(obj, attr):
            return False
        obj = getattr(obj, attr)
    return True


def _resolves(dotted: str) -> bool:
    """``a.b.c`` is a module, or an attribute (chain) of one."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for attr in parts[split:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False

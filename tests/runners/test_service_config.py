"""``badgateway run`` configuration: file < environment < --set, validated once, secrets never shown."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog

from processor.core.errors import UserConfigError
from processor.runners.service_config import Secret, ServiceConfig, load_config, redacted, valid_keys

REPO = Path(__file__).resolve().parents[2]
MINIMAL = '[[inputs]]\ntopic = "access"\ntype = "nginx_access"\n'


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "badgateway.toml"
    path.write_text(text)
    return str(path)


def test_example_config_loads_and_covers_every_key() -> None:
    # the documented example must stay valid and document every key the schema has
    path = REPO / "examples" / "badgateway.toml"
    config = load_config(str(path), environ={})
    assert [i.topic for i in config.inputs] == ["nginx-access", "nginx-error", "php-fpm"]
    text = path.read_text()
    for key in valid_keys():
        assert f"\n{key.rsplit('.', 1)[1]} =" in text, key


def test_defaults_and_types(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), environ={})
    assert config.kafka.bootstrap_servers == ("localhost:9092",)
    assert config.delivery.commit_interval_s == 5.0 and isinstance(config.delivery.commit_interval_s, float)
    assert config.inputs[0].envelope == "auto"
    with pytest.raises(AttributeError):
        config.kafka.group_id = "x"  # type: ignore[misc]  # frozen


@dataclass(frozen=True)
class Bad:
    why: str
    toml: str
    message: str  # a part of the error text the user must see


BAD = [
    # a typo'd key: the message names it, where it is, and lists every valid key
    Bad(
        "unknown key",
        '[kafka]\nbootstrap = "x:1"\n' + MINIMAL,
        "unknown key 'kafka.bootstrap' in {path} (did you mean 'kafka.bootstrap_servers'?); valid keys: "
        "kafka.client, kafka.bootstrap_servers, kafka.group_id",
    ),
    Bad("unknown section", '[kafak]\ngroup_id = "x"\n' + MINIMAL, "unknown key 'kafak' in {path}"),
    Bad("unknown input key", MINIMAL + 'topik = "x"\n', "unknown key 'inputs.0.topik' in {path}"),
    # wrong types are named with the file and the key
    Bad(
        "string for a number",
        '[delivery]\ncommit_interval_s = "5"\n' + MINIMAL,
        "{path}: delivery.commit_interval_s: expected a number, got str '5'",
    ),
    Bad("number for a string", "[kafka]\ngroup_id = 5\n" + MINIMAL, "{path}: kafka.group_id: expected a string"),
    Bad("bool is not an int", "[metrics]\nport = true\n" + MINIMAL, "{path}: metrics.port: expected an integer"),
    Bad("choice", MINIMAL + 'envelope = "logstash"\n', "inputs.0.envelope: 'logstash' is not one of"),
    Bad("log type", '[[inputs]]\ntopic = "a"\ntype = "apache"\n', "inputs.0.type: 'apache' is not one of"),
    Bad("host_from", MINIMAL + 'host_from = "header:"\n', "inputs.0.host_from"),
    Bad("no inputs", '[kafka]\ngroup_id = "g"\n', "no [[inputs]]"),
    Bad("timezone", '[diagnosis]\ntimezone = "Mars/Olympus"\n' + MINIMAL, "unknown timezone 'Mars/Olympus'"),
    Bad("reads its own output", '[outputs]\nincidents_topic = "access"\n' + MINIMAL, "also an input topic"),
    Bad("sasl without mechanism", '[kafka]\nsecurity_protocol = "SASL_SSL"\n' + MINIMAL, "sasl_mechanism: required"),
    Bad("not toml", "[kafka\n", "{path}: not valid TOML"),
]


@pytest.mark.parametrize("case", BAD, ids=[c.why for c in BAD])
def test_bad_configs_say_what_and_where(tmp_path: Path, case: Bad) -> None:
    path = write(tmp_path, case.toml)
    with pytest.raises(UserConfigError) as info:
        load_config(path, environ={})
    assert case.message.format(path=path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_environment_overrides_file_and_coerces_types(tmp_path: Path) -> None:
    path = write(tmp_path, "[delivery]\ncommit_interval_s = 5.0\n" + MINIMAL)
    env = {
        "BADGATEWAY_DELIVERY_COMMIT_INTERVAL_S": "1.5",
        "BADGATEWAY_KAFKA_BOOTSTRAP_SERVERS": "a:1, b:2",
        "BADGATEWAY_METRICS_PORT": "0",
        "BADGATEWAY_INPUTS_0_ENVELOPE": "filebeat",
        "BADGATEWAY_DIAGNOSIS_FPM_CONF": '["/etc/a.conf", "/etc/b.conf"]',
        "HOME": "/root",
    }
    config = load_config(path, environ=env)
    assert config.delivery.commit_interval_s == 1.5
    assert config.kafka.bootstrap_servers == ("a:1", "b:2")
    assert config.metrics.port == 0
    assert config.inputs[0].envelope == "filebeat"
    assert config.diagnosis.fpm_conf == ("/etc/a.conf", "/etc/b.conf")


def test_set_flags_win_over_environment(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    config = load_config(
        path,
        ["kafka.group_id=from-flag", "inputs.1.topic=errors", "inputs.1.type=nginx_error", "delivery.on_stop=handoff"],
        environ={"BADGATEWAY_KAFKA_GROUP_ID": "from-env"},
    )
    assert config.kafka.group_id == "from-flag"
    assert [(i.topic, i.type) for i in config.inputs] == [("access", "nginx_access"), ("errors", "nginx_error")]
    assert config.delivery.on_stop == "handoff"


@pytest.mark.parametrize(
    "flag, message",
    [
        ("kafka.bootstrap=x", "unknown key 'kafka.bootstrap' in --set kafka.bootstrap"),
        ("metrics.port=http", "--set metrics.port: expected an integer, got 'http'"),
        ("delivery.exactly_once=maybe", "--set delivery.exactly_once: expected true or false"),
        ("inputs.5.topic=x", "there are only 1 inputs"),
        ("kafka.group_id", "expected section.key=value"),
    ],
)
def test_bad_flags(tmp_path: Path, flag: str, message: str) -> None:
    with pytest.raises(UserConfigError, match=None) as info:
        load_config(write(tmp_path, MINIMAL), [flag], environ={})
    assert message in str(info.value)


def test_bad_environment_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserConfigError) as info:
        load_config(write(tmp_path, MINIMAL), environ={"BADGATEWAY_KAFKA_BOOTSTRAPS": "x"})
    assert "unknown key 'kafka.bootstraps' in environment variable BADGATEWAY_KAFKA_BOOTSTRAPS" in str(info.value)


def test_secret_never_shown(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[kafka]\nsecurity_protocol = "SASL_SSL"\nsasl_mechanism = "PLAIN"\n'
        'sasl_username = "svc"\nsasl_password = "hunter2"\n' + MINIMAL,
    )
    config = load_config(path, environ={})
    assert config.kafka.sasl_password.reveal() == "hunter2"
    for shown in (
        repr(config),
        str(config),
        repr(config.kafka),
        str(config.kafka.sasl_password),
        json.dumps(redacted(config)),
    ):
        assert "hunter2" not in shown
        assert "***" in shown
    # and in the service's log lines (the JSON renderer), even if a Secret itself is logged by mistake
    from processor.io.log import configure, get_logger

    configure(json=True)
    buf = io.StringIO()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=buf))
    get_logger().info(
        "service.starting", config=redacted(config), oops=config.kafka.sasl_password, kafka=repr(config.kafka)
    )
    line = buf.getvalue()
    structlog.reset_defaults()
    assert "hunter2" not in line and "***" in line
    assert json.loads(line)["oops"] == "***"


def test_secret_from_environment_is_wrapped(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), environ={"BADGATEWAY_KAFKA_SASL_PASSWORD": "s3cret"})
    assert isinstance(config.kafka.sasl_password, Secret)
    assert "s3cret" not in repr(config)


def test_no_file_at_all_uses_flags() -> None:
    config = load_config(None, ["inputs.0.topic=mixed"], environ={})
    assert isinstance(config, ServiceConfig) and config.inputs[0].type == "auto"


def test_sasl_and_ssl_settings_reach_kafka_python(tmp_path: Path) -> None:
    from processor.io.kafka.python_client import client_options

    path = write(
        tmp_path,
        '[kafka]\nbootstrap_servers = "k1:9093,k2:9093"\nsecurity_protocol = "SASL_SSL"\n'
        'sasl_mechanism = "SCRAM-SHA-512"\nsasl_username = "svc"\nsasl_password = "hunter2"\n'
        'ssl_cafile = "/etc/ssl/ca.pem"\n' + MINIMAL,
    )
    opts = client_options(load_config(path, environ={}).kafka)
    assert opts["bootstrap_servers"] == ["k1:9093", "k2:9093"]
    assert (opts["security_protocol"], opts["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (opts["sasl_plain_username"], opts["sasl_plain_password"]) == ("svc", "hunter2")  # revealed only here
    assert opts["ssl_cafile"] == "/etc/ssl/ca.pem" and "ssl_certfile" not in opts

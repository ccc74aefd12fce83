"""badgateway: explains every NGINX 502/504 in a PHP-FPM stack.

The Python API, for embedding the diagnosis in your own consumer loop::

    from processor import DiagnosisSettings, Record, SourceRef, build

    pipeline, knowledge = build(DiagnosisSettings(nginx_conf="/etc/nginx/nginx.conf",
                                                  fpm_conf=("/etc/php/8.2/fpm/php-fpm.conf",)))
    for out in pipeline.feed(Record(line, SourceRef("access.log", n), "nginx_access", "web-1", None)):
        ...  # out.kind is "incident", "event" or "dead_letter"; out.value the record
    outputs_at_the_end = pipeline.flush()

Names load on first use, so ``import processor`` (and the command line) stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Pipeline": "processor.pipeline",
    "PipelineSettings": "processor.pipeline",
    "Output": "processor.pipeline",
    "Record": "processor.core.events",
    "SourceRef": "processor.core.events",
    "Event": "processor.core.events",
    "DeadLetter": "processor.core.events",
    "Knowledge": "processor.configs.knowledge",
    "load_knowledge": "processor.configs.knowledge",
    "MemorySink": "processor.io.sinks",
    "DiagnosisSettings": "processor.runners.settings",
    "build": "processor.runners.settings",
}
__all__ = [
    "DeadLetter",
    "DiagnosisSettings",
    "Event",
    "Knowledge",
    "MemorySink",
    "Output",
    "Pipeline",
    "PipelineSettings",
    "Record",
    "SourceRef",
    "__version__",
    "build",
    "load_knowledge",
]

if TYPE_CHECKING:
    from processor.configs.knowledge import Knowledge, load_knowledge
    from processor.core.events import DeadLetter, Event, Record, SourceRef
    from processor.io.sinks import MemorySink
    from processor.pipeline import Output, Pipeline, PipelineSettings
    from processor.runners.settings import DiagnosisSettings, build


assert set(__all__) == {"__version__", *_EXPORTS}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'processor' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

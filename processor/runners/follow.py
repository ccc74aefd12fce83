"""``badgateway follow``: tail live log files like ``tail -F`` and report incidents as their windows close.

The tailing itself (rotation by rename, copytruncate, files that appear later, the state file of byte offsets,
bounded reads per poll) is ``Follower`` in processor/runners/tail.py; this is the command: the pipeline, the outputs
and the loop, and the state saved only once the outputs before it are written (and acknowledged by Kafka).
"""

from __future__ import annotations

import argparse
import signal
import time
from datetime import tzinfo
from types import FrameType

from processor.configs.knowledge import Knowledge
from processor.core.errors import BadgatewayError
from processor.io.sinks import JsonLinesSink, KafkaTopicSink, Router, check_outputs
from processor.pipeline import Output, Pipeline
from processor.runners.replay import base_name, learn_host_timezones, plan_inputs
from processor.runners.settings import build_pipeline
from processor.runners.tail import Follower

_STATE_EVERY_S = 2.0


def learned_zones(pipeline: Pipeline, paths: list[str], args: argparse.Namespace, know: Knowledge) -> dict[str, tzinfo]:
    """``--timezone auto``: the UTC offset each host's access log writes, as ``replay`` learns it (#18); a file
    whose type cannot be told yet (empty, still being created) teaches nothing."""
    plans = []
    for path in paths:
        try:
            plans += plan_inputs(
                pipeline,
                [path],
                forced_type=args.type,
                format_by_path=know.format_by_path,
                forced_format=know.forced_format,
                host=args.host,
            )
        except BadgatewayError:
            continue
    return learn_host_timezones(pipeline, plans)


def follow_command(args: argparse.Namespace) -> int:
    check_outputs(
        {
            "-o": None if args.kafka_bootstrap else args.output,
            "--events": args.events,
            "--dead-letter": args.dead_letter,
            "--state-file": args.state_file,
            "--episodes": args.episodes,
        },
        Follower.matching(list(args.paths)),
    )
    pipeline, know = build_pipeline(args, emit_events=bool(args.events))
    if args.timezone is None:  # auto, as replay: each host's offset from the access logs there now
        zones = learned_zones(pipeline, Follower.matching(list(args.paths)), args, know)
        if zones:
            pipeline, _ = build_pipeline(args, emit_events=bool(args.events), knowledge=know, host_timezones=zones)
    follower = Follower(
        pipeline,
        list(args.paths),
        host=args.host,
        forced_type=args.type,
        format_by_base={base_name(p): f for p, f in know.format_by_path.items()},
        forced_format=know.forced_format,
        state_file=args.state_file,
    )
    incidents: JsonLinesSink | KafkaTopicSink
    if args.kafka_bootstrap:
        incidents = KafkaTopicSink(args.kafka_bootstrap, args.kafka_topic, args.kafka_client)
    else:
        incidents = JsonLinesSink(args.output, line_buffered=True)
    events = JsonLinesSink(args.events, line_buffered=True) if args.events else None
    dead = JsonLinesSink(args.dead_letter, line_buffered=True) if args.dead_letter else None
    episodes = JsonLinesSink(args.episodes, line_buffered=True) if args.episodes else None
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    router = Router({"incident": incidents, "event": events, "dead_letter": dead, "episode": episodes})

    def ship(outputs: list[Output], *, final: bool = False) -> None:
        router.ship(pipeline.episode_outputs(outputs, final=final))

    last_save = time.monotonic()
    try:
        while not stopping:
            ship(follower.poll())
            if time.monotonic() - last_save > _STATE_EVERY_S:
                router.flush()  # written (and acknowledged by Kafka) before the offsets that produced them are saved
                follower.save_state(at_end=False)
                last_save = time.monotonic()
            if not follower.behind:  # a burst is read without sleeping, a bounded share per poll
                time.sleep(args.poll_interval)
        ship(follower.poll())
        ship(pipeline.flush(), final=True)
        router.close()
        follower.save_state(at_end=True)  # only once every output is written (and acknowledged)
    except BaseException:
        try:
            router.close()
        except BadgatewayError:
            pass  # (an undelivered incident again): the first error is the one reported
        raise
    return 0

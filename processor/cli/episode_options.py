"""``--episodes FILE`` and its rules, for replay, follow and filter (``runners.settings.episode_rules`` reads them;
the service reads ``diagnosis.episode_*``)."""

from __future__ import annotations

import argparse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


def add_episode_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--episodes",
        metavar="FILE",
        help="also write outage episodes (one record per opened/updated/resolved; JSON Lines)",
    )
    p.add_argument(
        "--episode-gap",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="an episode ends after this long (event time) with no incident of its cause and pool",
    )
    p.add_argument(
        "--episode-wait",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="an episode is reported (opened) this long after its first incident",
    )
    p.add_argument(
        "--episode-interval",
        type=_seconds,
        default=300.0,
        metavar="SECONDS",
        help="an open episode is updated this often (and when its count reaches a power of ten)",
    )
    p.add_argument(
        "--episodes-fleet",
        action="store_true",
        help="one episode per cause, pool and upstream across hosts (listing them), not per host",
    )

"""Shared pytest plugins: the real Kafka broker fixtures live in tests/fixtures/kafka.py."""

pytest_plugins = ["tests.fixtures.kafka"]

"""Latency measurement: statistics, the timing harness, attached boards over SSH and the CI regression gate."""

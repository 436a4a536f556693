"""The server's Prometheus metrics (prometheus_client), in a registry of its own so that several
servers in one process (tests) do not collide. The engine loop writes the engine-side ones
(tokens, latencies, queue and KV cache use) after each step; the HTTP layer counts requests."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

PREFIX = "llama4_native"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self, model_name: str):
        self.registry = r = CollectorRegistry()
        labels = ["model_name"]
        self.requests = Counter(f"{PREFIX}_requests", "HTTP requests by endpoint and status code",
                                ["endpoint", "status"], registry=r)
        self.finished = Counter(f"{PREFIX}_request_finished", "Samples finished, by finish reason",
                                labels + ["finish_reason"], registry=r)
        self.prompt_tokens = Counter(f"{PREFIX}_prompt_tokens", "Prompt tokens admitted", labels, registry=r)
        self.generation_tokens = Counter(f"{PREFIX}_generation_tokens", "Tokens generated", labels, registry=r)
        self.running = Gauge(f"{PREFIX}_num_requests_running", "Sequences running in the scheduler",
                             labels, registry=r)
        self.waiting = Gauge(f"{PREFIX}_num_requests_waiting",
                             "Requests queued (not yet admitted, or preempted)", labels, registry=r)
        self.preemptions = Gauge(f"{PREFIX}_num_preemptions", "Preemptions since start", labels, registry=r)
        self.kv_usage = Gauge(f"{PREFIX}_kv_cache_usage_ratio", "Fraction of KV cache pages in use (both groups)",
                              labels, registry=r)
        self.kv_free = Gauge(f"{PREFIX}_kv_cache_free_pages", "Free KV cache pages per group",
                             labels + ["group"], registry=r)
        self.kv_total = Gauge(f"{PREFIX}_kv_cache_total_pages", "KV cache pages per group",
                              labels + ["group"], registry=r)
        self.ttft = Histogram(f"{PREFIX}_time_to_first_token_seconds", "Arrival to first token",
                              labels, buckets=_LATENCY_BUCKETS, registry=r)
        self.itl = Histogram(f"{PREFIX}_inter_token_latency_seconds", "Time between a sample's tokens",
                             labels, buckets=_LATENCY_BUCKETS, registry=r)
        self.e2e = Histogram(f"{PREFIX}_e2e_request_latency_seconds", "Arrival to the last sample's end",
                             labels, buckets=_LATENCY_BUCKETS, registry=r)
        self.name = model_name
        for m in (self.prompt_tokens, self.generation_tokens, self.running, self.waiting, self.preemptions,
                  self.kv_usage, self.ttft, self.itl, self.e2e):
            m.labels(model_name)  # present (at zero) from the start, not from the first event

    def engine_state(self, stats: dict, queued: int, free: list[int], total: list[int]) -> None:
        n = self.name
        self.running.labels(n).set(stats["running"])
        self.waiting.labels(n).set(stats["waiting"] + queued)
        self.preemptions.labels(n).set(stats["preemptions"])
        for g, (f, t) in enumerate(zip(free, total)):
            self.kv_free.labels(n, str(g)).set(f)
            self.kv_total.labels(n, str(g)).set(t)
        all_pages = sum(total)
        self.kv_usage.labels(n).set((all_pages - sum(free)) / all_pages if all_pages else 0.0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

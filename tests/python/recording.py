"""A queue adapter of the tests that records what it is sent instead of sending it."""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

import acidic_job
import acidic_job.adapters


class RecordingAdapter(acidic_job.adapters.Adapter):
    name = "recorder"

    def __init__(self, db: Any = None) -> None:
        super().__init__(db)
        self.sent: List[Tuple[int, str, Dict[str, Any]]] = []

    def send(self, staged_id: int, job_name: str, payload: Dict[str, Any]) -> None:
        self.sent.append((staged_id, job_name, payload))

    def continuation(self) -> str:
        return "recorder.resume"

    def perform(self, db: Any) -> List[Any]:
        """Be the queue's worker: run what was sent (resumes), acknowledge what
        succeeded, and return what each run returned or raised."""
        results = []
        sent, self.sent = self.sent, []
        for staged_id, job_name, payload in sent:
            assert job_name == "recorder.resume", job_name
            try:
                with acidic_job.recoverable(self.name):
                    results.append(acidic_job.queues.resume(payload["args"][0]))
            except Exception as exc:  # a failed job is not acknowledged, as in a queue
                results.append(exc)
            else:
                acidic_job.ack(staged_id, db)
        return results

"""IndexWriter: bounded requests to receivers/simple, one per run of equal metadata, failures counted.

Single-layer tests with a recording receiver; the real requests to splunkd are covered by the
alert action's end-to-end tests against the fake splunkd.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from mde_file_alerts.errors import ConfigurationError
from mde_file_alerts.splunk.ingest import RECEIVER_PATH, IndexEvent, IndexWriter
from mde_file_alerts.splunk.splunkd import SplunkdResponse


@dataclass
class Request:
    path: str
    lines: list[str]
    query: dict[str, str]


@dataclass
class RecordingReceiver:
    """Answers each request with the next status of ``statuses`` (then 200) and records it."""

    statuses: list[int] = field(default_factory=list)
    unreachable: bool = False
    requests: list[Request] = field(default_factory=list)

    def post_raw(self, path: str, body: bytes, query: Mapping[str, str]) -> SplunkdResponse:
        self.requests.append(Request(path, body.decode("utf-8").split("\n"), dict(query)))
        if self.unreachable:
            raise ConfigurationError(
                "Could not reach splunkd at https://127.0.0.1:8089 (ConnectionRefusedError)."
            )
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            return SplunkdResponse(200, b'{"index":"main","bytes":1}')
        document = {"messages": [{"type": "ERROR", "text": f"refused with {status}"}]}
        return SplunkdResponse(status, json.dumps(document).encode())


def alert(number: int, sha1: str = "a" * 40) -> IndexEvent:
    return IndexEvent(
        raw=json.dumps({"id": f"da{number}", "title": "Süspicious"}, ensure_ascii=False),
        source=f"mde_file_alerts://prod/api/files/{sha1}/alerts",
        sourcetype="ms:defender:atp:alerts",
        host="api.security.microsoft.com",
    )


def test_events_of_one_source_go_in_one_request_with_their_metadata_in_the_query() -> None:
    receiver = RecordingReceiver()
    writer = IndexWriter(receiver, "mde")

    for number in range(3):
        writer.add(alert(number))
    writer.flush()

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert request.path == RECEIVER_PATH == "/services/receivers/simple"
    assert request.query == {
        "index": "mde",
        "source": f"mde_file_alerts://prod/api/files/{'a' * 40}/alerts",
        "sourcetype": "ms:defender:atp:alerts",
        "host": "api.security.microsoft.com",
    }
    assert [json.loads(line)["id"] for line in request.lines] == ["da0", "da1", "da2"]
    assert writer.report.written == 3 and writer.report.ok


def test_a_change_of_source_starts_a_new_request_and_order_is_kept() -> None:
    receiver = RecordingReceiver()
    writer = IndexWriter(receiver, "main")

    writer.add(alert(1, "a" * 40))
    writer.add(alert(2, "b" * 40))
    writer.add(alert(3, "b" * 40))
    writer.flush()

    assert [len(request.lines) for request in receiver.requests] == [1, 2]
    assert ["b" * 40 in request.query["source"] for request in receiver.requests] == [False, True]


def test_no_request_body_grows_beyond_the_bound() -> None:
    receiver = RecordingReceiver()
    one_line = len(alert(0).raw.encode("utf-8"))
    writer = IndexWriter(receiver, "main", max_batch_bytes=3 * one_line + 2)

    for number in range(7):
        writer.add(alert(number))
    writer.flush()

    assert [len(request.lines) for request in receiver.requests] == [3, 3, 1]
    assert all(len("\n".join(r.lines).encode()) <= 3 * one_line + 2 for r in receiver.requests)
    assert writer.report.written == 7


def test_an_event_larger_than_the_bound_is_sent_alone_rather_than_dropped() -> None:
    receiver = RecordingReceiver()
    writer = IndexWriter(receiver, "main", max_batch_bytes=10)

    writer.add(alert(1))
    writer.add(alert(2))
    writer.flush()

    assert [len(request.lines) for request in receiver.requests] == [1, 1]
    assert writer.report.written == 2


def test_a_host_of_none_is_left_to_splunkd() -> None:
    receiver = RecordingReceiver()
    IndexWriter(receiver, "main").write(
        IndexEvent('{"time":"x"}', "mde_file_alerts_action", "mde_file_alerts:action")
    )
    assert "host" not in receiver.requests[0].query


def test_write_sends_what_was_collected_first_then_the_event_alone() -> None:
    receiver = RecordingReceiver()
    writer = IndexWriter(receiver, "main")
    writer.add(alert(1))

    assert (
        writer.write(IndexEvent('{"summary":1}', "mde_file_alerts_action", "mde_file_alerts:action")) is True
    )

    assert [request.query["sourcetype"] for request in receiver.requests] == [
        "ms:defender:atp:alerts",
        "mde_file_alerts:action",
    ]


def test_a_refusal_that_would_repeat_stops_further_requests_and_counts_what_was_not_written() -> None:
    receiver = RecordingReceiver(statuses=[403])
    writer = IndexWriter(receiver, "mde")

    writer.add(alert(1, "a" * 40))
    writer.add(alert(2, "b" * 40))
    writer.add(alert(3, "c" * 40))
    writer.flush()

    assert len(receiver.requests) == 1, "the same refusal is not asked for again"
    assert writer.report.written == 0 and writer.report.not_written == 3
    assert len(writer.report.problems) == 1
    problem = writer.report.problems[0]
    assert "index 'mde'" in problem and "edit_tcp" in problem and "refused with 403" in problem


@pytest.mark.parametrize(
    ("status", "words"), [(401, "session key"), (400, "does the index 'mde' exist"), (404, "exist")]
)
def test_each_refusal_says_what_to_check(status: int, words: str) -> None:
    writer = IndexWriter(RecordingReceiver(statuses=[status]), "mde")
    writer.add(alert(1))
    writer.flush()
    assert words in writer.report.problems[0]


def test_a_server_error_loses_only_its_own_request() -> None:
    receiver = RecordingReceiver(statuses=[503])
    writer = IndexWriter(receiver, "main")

    writer.add(alert(1, "a" * 40))
    writer.add(alert(2, "b" * 40))
    writer.flush()

    assert len(receiver.requests) == 2
    assert writer.report.written == 1 and writer.report.not_written == 1
    assert "HTTP 503" in writer.report.problems[0]


def test_an_unreachable_splunkd_is_one_sentence_and_no_retry_storm() -> None:
    receiver = RecordingReceiver(unreachable=True)
    writer = IndexWriter(receiver, "main")

    writer.add(alert(1, "a" * 40))
    writer.add(alert(2, "b" * 40))
    writer.flush()

    assert len(receiver.requests) == 1
    assert writer.report.not_written == 2
    assert writer.report.problems == [
        "Could not write 1 event (sourcetype ms:defender:atp:alerts) to index 'main': "
        "Could not reach splunkd at https://127.0.0.1:8089 (ConnectionRefusedError)."
    ]


def test_an_event_must_be_one_line_because_splunkd_breaks_the_body_on_new_lines() -> None:
    with pytest.raises(ValueError, match="single line"):
        IndexEvent('{"a":\n1}', "s", "st")


def test_flushing_nothing_sends_nothing() -> None:
    receiver = RecordingReceiver()
    IndexWriter(receiver, "main").flush()
    assert receiver.requests == []

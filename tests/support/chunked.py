"""Drive a search command exactly as splunkd does: a subprocess speaking SCP v2 ("chunked") bytes.

splunkd starts ``python bin/<command>.py`` with no extra arguments (more argv would switch
splunklib to the legacy protocol), sends a ``getinfo`` chunk, then ``execute`` chunks in strict
lock-step, one reply per request, until a reply says ``finished``. Replies carry CSV bodies with
``__mv_<field>`` companion columns for multivalue fields; they are parsed with the csv module.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable

HEADER = re.compile(rb"chunked 1\.0,(\d+),(\d+)\n")
# Generous: a cold interpreter start plus a whole lookup against the emulator.
DEFAULT_TIMEOUT_SECONDS = 120.0


@dataclass
class Chunk:
    metadata: dict[str, Any]
    body: bytes

    @property
    def records(self) -> list[dict[str, Any]]:
        return parse_records(self.body)

    @property
    def messages(self) -> list[tuple[str, str]]:
        inspector = self.metadata.get("inspector") or {}
        return [(level, text) for level, text in inspector.get("messages", [])]


@dataclass
class CommandRun:
    """Everything splunkd would have seen from one run of the command."""

    getinfo: dict[str, Any]
    replies: list[Chunk] = field(default_factory=list)
    exit_code: int | None = None
    stderr: str = ""
    stdout_bytes: bytes = b""

    @property
    def records(self) -> list[dict[str, Any]]:
        return [record for reply in self.replies for record in reply.records]

    @property
    def messages(self) -> list[tuple[str, str]]:
        found = [(level, text) for level, text in self.getinfo.get("inspector", {}).get("messages", [])]
        for reply in self.replies:
            found.extend(reply.messages)
        return found

    def messages_at(self, level: str) -> list[str]:
        return [text for found_level, text in self.messages if found_level == level]

    @property
    def visible_text(self) -> str:
        """All a user could see or splunkd could log: replies, messages and stderr."""
        return self.stdout_bytes.decode("utf-8", "replace") + "\n" + self.stderr


def encode_chunk(metadata: dict[str, Any], body: bytes = b"") -> bytes:
    meta = json.dumps(metadata, separators=(",", ":")).encode("utf-8")
    return b"chunked 1.0,%d,%d\n" % (len(meta), len(body)) + meta + body


def read_chunk(stream: IO[bytes], transcript: bytearray) -> Chunk | None:
    header = stream.readline()
    if not header:
        return None
    transcript.extend(header)
    match = HEADER.fullmatch(header)
    if match is None:
        raise ProtocolError(f"not a chunk header: {header[:200]!r}")
    metadata_length, body_length = int(match.group(1)), int(match.group(2))
    metadata = _read_exactly(stream, metadata_length)
    body = _read_exactly(stream, body_length)
    transcript.extend(metadata + body)
    return Chunk(json.loads(metadata) if metadata else {}, body)


def _read_exactly(stream: IO[bytes], length: int) -> bytes:
    data = b""
    while len(data) < length:
        more = stream.read(length - len(data))
        if not more:
            raise ProtocolError(f"stream ended after {len(data)} of {length} bytes")
        data += more
    return data


def parse_records(body: bytes) -> list[dict[str, Any]]:
    """CSV body → records; a field with a non-empty ``__mv_`` companion becomes a list."""
    if not body:
        return []
    reader = csv.DictReader(io.StringIO(body.decode("utf-8"), newline=""))
    records = []
    for row in reader:
        record: dict[str, Any] = {}
        for name, value in row.items():
            if name.startswith("__mv_"):
                continue
            multivalue = row.get(f"__mv_{name}") or ""
            if multivalue:
                record[name] = decode_multivalue(multivalue)
            elif value != "":
                record[name] = value
        records.append(record)
    return records


def decode_multivalue(encoded: str) -> list[str]:
    """``$a$;$b$`` → ["a", "b"]; a literal ``$`` inside a value is doubled."""
    values = []
    for match in re.finditer(r"\$((?:[^$]|\$\$)*)\$(?:;|$)", encoded, flags=re.DOTALL):
        values.append(match.group(1).replace("$$", "$"))
    return values


class ProtocolError(AssertionError):
    """The command broke the chunked protocol."""


@dataclass
class SearchInfo:
    """The searchinfo splunkd sends in getinfo (keys splunklib reads, plus those splunkd adds)."""

    args: list[str]
    dispatch_dir: Path
    splunkd_uri: str = "https://127.0.0.1:1"
    session_key: str = "no-session"
    app: str = "search"
    username: str = "admin"
    maxresultrows: int = 50000
    splunk_version: str = "9.3.2"
    command: str = "mdefilealerts"

    def to_json(self) -> dict[str, Any]:
        search = f"| {self.command} " + " ".join(self.args)
        return {
            "args": self.args,
            "raw_args": self.args,
            "dispatch_dir": str(self.dispatch_dir),
            "sid": f"1700000000.{uuid.uuid4().int % 10000}",
            "app": self.app,
            "owner": self.username,
            "username": self.username,
            "session_key": self.session_key,
            "splunkd_uri": self.splunkd_uri,
            "splunk_version": self.splunk_version,
            "search": search,
            "command": self.command,
            "maxresultrows": self.maxresultrows,
            "earliest_time": "0",
            "latest_time": "0",
        }


def run_generating_command(
    script: Path,
    searchinfo: SearchInfo,
    *,
    python: str = sys.executable,
    env: dict[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    max_pages: int = 10_000,
) -> CommandRun:
    """Run ``python script`` as splunkd runs a generating command and collect everything."""
    return _run_command(
        script, searchinfo, python, env, timeout, lambda process: _converse(process, searchinfo, max_pages)
    )


def _run_command(
    script: Path,
    searchinfo: SearchInfo,
    python: str,
    env: dict[str, str] | None,
    timeout: float,
    converse: Callable[[subprocess.Popen[bytes]], CommandRun],
) -> CommandRun:
    """Start the command as splunkd does, let ``converse`` speak to it, collect exit code and stderr."""
    searchinfo.dispatch_dir.mkdir(parents=True, exist_ok=True)
    child_env = dict(os.environ if env is None else env)
    child_env["PYTHONDONTWRITEBYTECODE"] = "1"
    # stderr goes to a file so a chatty command can never block on a full pipe; a watchdog kills
    # a command that stops answering, so a protocol bug fails the test instead of hanging it.
    with tempfile.TemporaryFile() as stderr_file:
        process = subprocess.Popen(
            [python, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            env=child_env,
            cwd=str(searchinfo.dispatch_dir),
        )
        watchdog = threading.Timer(timeout, process.kill)
        watchdog.start()
        try:
            run = converse(process)
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
            process.wait()
        run.exit_code = process.returncode
        stderr_file.seek(0)
        run.stderr = stderr_file.read().decode("utf-8", "replace")
    return run


def _converse(process: subprocess.Popen[bytes], searchinfo: SearchInfo, max_pages: int) -> CommandRun:
    assert process.stdin is not None and process.stdout is not None
    transcript = bytearray()
    getinfo_request = {"action": "getinfo", "preview": False, "searchinfo": searchinfo.to_json()}
    process.stdin.write(encode_chunk(getinfo_request))
    process.stdin.flush()
    getinfo = read_chunk(process.stdout, transcript)
    run = CommandRun(getinfo=getinfo.metadata if getinfo else {})
    finished = getinfo is None or getinfo.metadata.get("finished") is True
    while not finished and len(run.replies) < max_pages:
        try:
            process.stdin.write(encode_chunk({"action": "execute", "finished": True}))
            process.stdin.flush()
        except BrokenPipeError:
            break
        reply = read_chunk(process.stdout, transcript)
        if reply is None:
            break
        run.replies.append(reply)
        finished = reply.metadata.get("finished", False) is True
    with contextlib.suppress(BrokenPipeError):
        process.stdin.close()
    transcript.extend(process.stdout.read())
    run.stdout_bytes = bytes(transcript)
    return run


def encode_records(records: list[dict[str, Any]]) -> bytes:
    """Records → the CSV body splunkd sends: every field with its ``__mv_`` companion, ``\\r\\n`` rows.

    A list value is a multivalue: its values joined by new lines, and ``$a$;$b$`` (a ``$`` inside a
    value doubled) in the companion column. Fields are in order of first appearance.
    """
    if not records:
        return b""
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([column for name in names for column in (name, f"__mv_{name}")])
    for record in records:
        row: list[str] = []
        for name in names:
            value = record.get(name)
            if isinstance(value, list):
                texts = [str(item) for item in value]
                row += ["\n".join(texts), ";".join("$" + text.replace("$", "$$") + "$" for text in texts)]
            else:
                row += ["" if value is None else str(value), ""]
        writer.writerow(row)
    return buffer.getvalue().encode("utf-8")


def run_streaming_command(
    script: Path,
    searchinfo: SearchInfo,
    chunks_of_records: list[list[dict[str, Any]]],
    *,
    python: str = sys.executable,
    env: dict[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> CommandRun:
    """Run ``python script`` as splunkd runs a command that processes records (not generating).

    After getinfo, each list of records goes out as one execute chunk with a CSV body; only the
    last says ``finished: true`` (with no records at all, one empty chunk says it). Exactly one
    reply is read per chunk; a reply that says ``finished`` ends the exchange early, as splunkd
    then sends nothing more.
    """
    return _run_command(
        script,
        searchinfo,
        python,
        env,
        timeout,
        lambda process: _converse_with_records(process, searchinfo, chunks_of_records or [[]]),
    )


def _converse_with_records(
    process: subprocess.Popen[bytes], searchinfo: SearchInfo, chunks_of_records: list[list[dict[str, Any]]]
) -> CommandRun:
    assert process.stdin is not None and process.stdout is not None
    transcript = bytearray()
    getinfo_request = {"action": "getinfo", "preview": False, "searchinfo": searchinfo.to_json()}
    process.stdin.write(encode_chunk(getinfo_request))
    process.stdin.flush()
    getinfo = read_chunk(process.stdout, transcript)
    run = CommandRun(getinfo=getinfo.metadata if getinfo else {})
    finished = getinfo is None or getinfo.metadata.get("finished") is True
    for index, records in enumerate(chunks_of_records):
        if finished:
            break
        last = index == len(chunks_of_records) - 1
        request = encode_chunk({"action": "execute", "finished": last}, encode_records(records))
        try:
            process.stdin.write(request)
            process.stdin.flush()
        except BrokenPipeError:
            break
        reply = read_chunk(process.stdout, transcript)
        if reply is None:
            break
        run.replies.append(reply)
        finished = reply.metadata.get("finished", False) is True
    with contextlib.suppress(BrokenPipeError):
        process.stdin.close()
    transcript.extend(process.stdout.read())
    run.stdout_bytes = bytes(transcript)
    return run

"""SSEDecoder: frames and framing findings are the same whatever the chunking of the bytes.

Rules quoted from the WHATWG HTML standard §9.2.6 "Interpreting an event stream".
"""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.core.findings import FindingLog
from harness.core.sse import Frame, SSEDecoder, decode_all
from stream_builder import message_stream, to_sse

BODY = to_sse(message_stream([["Héllo", " wörld", " 😀"], ["second"]]))
N_EVENTS = len(message_stream([["Héllo", " wörld", " 😀"], ["second"]]))


def decode_chunks(chunks: list[bytes], **kw) -> tuple[list[Frame], FindingLog]:
    dec = SSEDecoder(**kw)
    frames: list[Frame] = []
    for chunk in chunks:
        frames += dec.feed(chunk)
    frames += dec.close()
    return frames, dec.log


def as_tuples(frames: list[Frame]) -> list[tuple]:
    return [(f.index, f.data, f.event, f.id, f.data_lines) for f in frames]


def checks(log: FindingLog) -> list[str]:
    return [f.check for f in log.findings]


# -- chunking invariance -------------------------------------------------------------------
def test_whole_body():
    frames, log = decode_all(BODY)
    assert len(frames) == N_EVENTS
    assert log.findings == []
    assert frames[0].event == "response.created"
    assert [f.index for f in frames] == list(range(N_EVENTS))
    # The split emoji/accents survive: the body is decoded as UTF-8 across frames.
    assert any("😀" in f.data for f in frames)


def test_every_split_point():
    expected = as_tuples(decode_all(BODY)[0])
    for cut in range(len(BODY) + 1):
        frames, log = decode_chunks([BODY[:cut], BODY[cut:]])
        assert as_tuples(frames) == expected, cut
        assert log.findings == [], cut


def test_one_byte_chunks():
    expected = as_tuples(decode_all(BODY)[0])
    frames, log = decode_chunks([BODY[i:i + 1] for i in range(len(BODY))])
    assert as_tuples(frames) == expected
    assert log.findings == []


def test_empty_chunks_are_harmless():
    expected = as_tuples(decode_all(BODY)[0])
    frames, log = decode_chunks([b"", BODY[:10], b"", BODY[10:], b""])
    assert as_tuples(frames) == expected


def _cuts(body: bytes):
    return st.lists(st.integers(0, len(body)), max_size=40).map(
        lambda cuts: [body[a:b] for a, b in zip([0] + sorted(cuts), sorted(cuts) + [len(body)])])


TRICKY = (b"\xef\xbb\xbf: comment\r\nevent: response.created\r\nid: 7\r\n"
          b"data: {\"type\":\"response.created\",\r\ndata: \"x\":\"\xc3\xbc\xe2\x82\xac\"}\r\n\r\n"
          b"data: second\rdata: line\r\r: c\n\ndata: [DONE]\n\n")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
@pytest.mark.parametrize("body", [BODY, TRICKY], ids=["openai_framed", "crlf_cr_bom_multiline"])
def test_any_chunking_gives_same_frames_and_findings(body, data):
    expected_frames, expected_log = decode_all(body)
    chunks = data.draw(_cuts(body))
    frames, log = decode_chunks(chunks)
    assert as_tuples(frames) == as_tuples(expected_frames)
    assert checks(log) == checks(expected_log)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.sampled_from([None, "message", "response.x"]),
                          st.lists(st.text(alphabet=st.characters(
                              blacklist_categories=("Cs",), blacklist_characters="\r\n"),
                              max_size=20), min_size=1, max_size=3)),
                min_size=0, max_size=6),
       st.sampled_from(["\n", "\r\n", "\r"]), st.data())
def test_generated_streams_roundtrip(events, eol, data):
    """Any frames encoded with any legal line ending decode back to themselves, whatever the
    chunking."""
    out = []
    for event, lines in events:
        if event is not None:
            out.append(f"event: {event}{eol}")
        out += [f"data: {line}{eol}" for line in lines]
        out.append(eol)
    body = "".join(out).encode()
    frames, log = decode_chunks(data.draw(_cuts(body)))
    assert [(f.event, f.data) for f in frames] == [(e, "\n".join(ls)) for e, ls in events]
    if eol != "\n" and events:
        assert checks(log).count("sse.line_endings.lf") == 1
    assert "sse.utf8" not in checks(log) and "sse.frame.terminated" not in checks(log)


# -- line endings ----------------------------------------------------------------------------
@pytest.mark.parametrize("eol", [b"\r\n", b"\r"], ids=["crlf", "cr"])
def test_cr_line_endings(eol):
    body = BODY.replace(b"\n", eol)
    expected = as_tuples(decode_all(BODY)[0])
    frames, log = decode_all(body)
    assert as_tuples(frames) == expected
    assert checks(log) == ["sse.line_endings.lf"]


def test_crlf_split_between_chunks():
    """A CR at the end of a chunk may be half of a CRLF: it must not end two lines."""
    body = b"data: a\r\n\r\ndata: b\r\n\r\n"
    for cut in range(len(body) + 1):
        frames, log = decode_chunks([body[:cut], body[cut:]])
        assert [f.data for f in frames] == ["a", "b"], cut
        assert checks(log) == ["sse.line_endings.lf"], cut


def test_lone_cr_at_end_of_chunk_then_data():
    # "data: a" CR | "data: b" CR CR : the held CR is a line end of its own, not half a CRLF.
    frames, log = decode_chunks([b"data: a\r", b"data: b\r\r"])
    assert [(f.data, f.data_lines) for f in frames] == [("a\nb", 2)]


def test_lf_reported_at_most_once():
    frames, log = decode_chunks([b"data: a\r\n\r\n", b"data: b\r\n\r\n", b"data: c\r\r"])
    assert [f.data for f in frames] == ["a", "b", "c"]
    assert checks(log) == ["sse.line_endings.lf"]


# -- fields ----------------------------------------------------------------------------------
def test_comments_ignored():
    dec = SSEDecoder()
    frames = dec.feed(b": keep-alive\n\n:\ndata: x\n: inside\n\n") + dec.close()
    assert [f.data for f in frames] == ["x"]
    assert dec.comments == 3
    assert dec.log.findings == []


def test_multiline_data_joined_and_flagged_once():
    frames, log = decode_all(b"data: {\"a\":\ndata: 1}\n\ndata: x\ndata: y\ndata: z\n\n")
    assert [(f.data, f.data_lines) for f in frames] == [('{"a":\n1}', 2), ("x\ny\nz", 3)]
    assert checks(log) == ["sse.data.single_line"]
    assert log.findings[0].evidence["frame"] == 0


def test_leading_bom_ignored_once():
    frames, log = decode_all(b"\xef\xbb\xbfdata: x\n\n")
    assert [f.data for f in frames] == ["x"]
    assert log.findings == []
    # Split inside the BOM's three bytes.
    frames, _ = decode_chunks([b"\xef", b"\xbb", b"\xbfdata: x\n\n"])
    assert [f.data for f in frames] == ["x"]
    # Only ONE leading BOM is ignored: a second one is part of the field name, so the
    # line is an unknown field and nothing is dispatched.
    frames, _ = decode_all(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n")
    assert frames == []


def test_event_and_id_fields():
    body = (b"event: response.created\nid: 1\ndata: a\n\n"
            b"data: b\n\n"  # no event: -> None; id persists ("last event ID buffer")
            b"event:nospace\nid: 2\ndata:c\n\n"  # a space after the colon is optional
            b"id: x\x00y\ndata: d\n\n"  # an id containing NUL is ignored
            b"event: orphan\n\n"  # no data: nothing dispatched, and the event name is reset
            b"data: e\n\n")
    frames, log = decode_all(body)
    assert [(f.event, f.id, f.data) for f in frames] == [
        ("response.created", "1", "a"), (None, "1", "b"), ("nospace", "2", "c"),
        (None, "2", "d"), (None, "2", "e")]
    assert log.findings == []


def test_field_without_colon_and_unknown_fields():
    frames, _ = decode_all(b"data\n\nretry: 10\nfoo: bar\ndata:  two spaces\n\n")
    assert [f.data for f in frames] == ["", " two spaces"]


def test_done_sentinel():
    frames, _ = decode_all(b"data: {\"type\":\"x\"}\n\ndata: [DONE]\n\n")
    assert [f.is_done for f in frames] == [False, True]


def test_arrival_time_passed_through():
    dec = SSEDecoder()
    (frame,) = dec.feed(b"data: a\n\n", t=1.5)
    assert frame.t == 1.5


# -- unterminated frames -----------------------------------------------------------------------
@pytest.mark.parametrize("tail", [b"data: last", b"data: last\n", b"event: x\ndata: last\n"])
def test_unterminated_final_frame(tail):
    frames, log = decode_all(b"data: a\n\n" + tail)
    assert [f.data for f in frames] == ["a"]  # the unterminated frame is not dispatched
    assert checks(log) == ["sse.frame.terminated"]
    assert log.findings[0].evidence["frame"] == 1


def test_terminated_by_trailing_cr_at_eof():
    frames, log = decode_all(b"data: a\r\r")
    assert [f.data for f in frames] == ["a"]
    assert checks(log) == ["sse.line_endings.lf"]


def test_trailing_whitespace_or_comment_is_not_a_frame():
    frames, log = decode_all(b"data: a\n\n: bye\n")
    assert [f.data for f in frames] == ["a"]
    assert log.findings == []


# -- UTF-8 -----------------------------------------------------------------------------------
def test_invalid_utf8_flagged_with_offset():
    body = b"data: ok\n\ndata: a\xffb\n\ndata: \xfe\n\n"
    frames, log = decode_all(body)
    assert [f.data for f in frames] == ["ok", "a\ufffdb", "\ufffd"]
    assert checks(log) == ["sse.utf8"]  # once per stream
    assert log.findings[0].evidence["byte_offset"] == body.index(b"\xff")
    assert log.findings[0].evidence["frame"] == 1


@pytest.mark.parametrize("char", ["ü", "€", "😀"])
def test_multibyte_char_split_across_chunks_is_not_flagged(char):
    body = f"data: a{char}b\n\n".encode()
    start = body.index(char.encode())
    for cut in range(start + 1, start + len(char.encode())):
        frames, log = decode_chunks([body[:cut], body[cut:]])
        assert [f.data for f in frames] == [f"a{char}b"]
        assert log.findings == []


def test_invalid_byte_right_after_split_char_keeps_the_char():
    """Regression: when the chunk that completes a split character also holds an invalid byte,
    the held-back bytes of the character were dropped (ü became U+FFFD) and the offset was
    off by the held bytes."""
    body = "data: ü".encode() + b"\xff x\n\n"
    cut = body.index(b"\xbc")  # between the two bytes of ü
    frames, log = decode_chunks([body[:cut], body[cut:]])
    assert [f.data for f in frames] == ["ü\ufffd x"]
    assert checks(log) == ["sse.utf8"]
    assert log.findings[0].evidence["byte_offset"] == body.index(b"\xff")


def test_truncated_char_at_eof():
    frames, log = decode_chunks([b"data: a\n\ndata: b\xc3"])
    assert [f.data for f in frames] == ["a"]
    assert sorted(checks(log)) == ["sse.frame.terminated", "sse.utf8"]
    utf8 = next(f for f in log.findings if f.check == "sse.utf8")
    assert utf8.evidence["byte_offset"] == len(b"data: a\n\ndata: b")
    assert utf8.evidence["frame"] == 1
    term = next(f for f in log.findings if f.check == "sse.frame.terminated")
    assert term.evidence["actual"] == "data: b\ufffd"


def test_invalid_utf8_any_chunking():
    body = b"data: \xe2\x82\xac\xe2\x82\n\ndata: ok\n\n"  # a truncated 3-byte sequence
    expected = as_tuples(decode_all(body)[0])
    assert [t[1] for t in expected] == ["€\ufffd", "ok"]
    for cut in range(len(body) + 1):
        frames, log = decode_chunks([body[:cut], body[cut:]])
        assert as_tuples(frames) == expected, cut
        assert checks(log) == ["sse.utf8"], cut
        assert log.findings[0].evidence["byte_offset"] == 9, cut


# -- limits ----------------------------------------------------------------------------------
def test_frame_over_cap_single_line():
    cap = 1000
    body = b"data: ok\n\ndata: " + b"x" * 5000 + b"\n\ndata: after\n\n"
    frames, log = decode_chunks([body[i:i + 64] for i in range(0, len(body), 64)],
                                max_frame_bytes=cap)
    assert [f.data for f in frames] == ["ok", "after"]
    assert checks(log) == ["sse.limits"]
    assert log.findings[0].evidence["frame"] == 1


def test_frame_over_cap_many_data_lines():
    """Regression: after the cap dropped a frame's first lines, its remaining data lines were
    dispatched as a (truncated, spurious) frame of their own."""
    cap = 1000
    body = b"".join(b"data: " + b"y" * 90 + b"\n" for _ in range(40)) + b"\ndata: after\n\n"
    frames, log = decode_chunks([body], max_frame_bytes=cap)
    assert [f.data for f in frames] == ["after"]
    assert checks(log) == ["sse.limits"]


def test_overflowed_line_remainder_is_not_a_new_line():
    """Regression: the cap dropped the start of an overlong line; the rest of that line, if it
    looked like `data: ...`, was decoded as a new field and dispatched as an event the server
    never sent."""
    cap = 100
    chunks = [b"data: " + b"x" * 200, b"data: {\"type\":\"forged\"}\n\n", b"data: after\n\n"]
    frames, log = decode_chunks(chunks, max_frame_bytes=cap)
    assert [f.data for f in frames] == ["after"]
    assert checks(log) == ["sse.limits"]


def test_no_blank_line_ever_memory_bounded():
    cap = 64 * 1024
    dec = SSEDecoder(max_frame_bytes=cap)
    chunk = b"data: " + b"z" * (16 * 1024 - 6)
    tracemalloc.start()
    try:
        dec.feed(b"data: " + b"a" * 100)  # warm up
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(1000):  # 16 MiB with no newline at all
            assert dec.feed(chunk) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base < 8 * cap, peak - base
    assert len(dec._buf) <= cap + len(chunk)
    assert checks(dec.log) == ["sse.limits"]
    dec.close()


def test_many_lines_no_blank_line_memory_bounded():
    cap = 64 * 1024
    dec = SSEDecoder(max_frame_bytes=cap)
    for _ in range(2000):
        dec.feed(b"data: " + b"q" * 1000 + b"\n")
    assert dec._data_size <= cap
    assert sum(len(x) for x in dec._data) <= cap
    assert checks(dec.log) == ["sse.limits"]


CAP = 200


@settings(max_examples=300)
@given(st.lists(st.tuples(st.integers(0, 2 * CAP), st.integers(1, 3)), min_size=1, max_size=5),
       st.data())
def test_cap_verdict_does_not_depend_on_chunking(frames_spec, data):
    """Near the cap, whether a frame overflows must not depend on where the chunks end (a
    partial line is no bigger than the line it becomes)."""
    body = b"".join(b"event: e\n" + b"".join(b"data: " + b"x" * (size // lines) + b"\n"
                                             for _ in range(lines)) + b"\n"
                    for size, lines in frames_spec) + b"data: end\n\n"
    expected_frames, expected_log = decode_chunks([body], max_frame_bytes=CAP)
    frames, log = decode_chunks(data.draw(_cuts(body)), max_frame_bytes=CAP)
    assert as_tuples(frames) == as_tuples(expected_frames)
    assert checks(log) == checks(expected_log)
    assert frames[-1].data == "end"

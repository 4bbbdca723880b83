"""hookd.domain.envelope: ingest requests -> validated events and the exact body bytes.

The body is what every receiver gets and what the signature covers, so most tests here
compare bytes exactly. The Node test checks the property the spec's Express receiver
relies on: `JSON.stringify(JSON.parse(body)) === body`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from hookd.api.errors import ApiError, from_refusal
from hookd.domain.envelope import (
    MAX_BATCH,
    IngestRequest,
    check_event_name,
    decode_batch,
    decode_event,
    format_timestamp,
    internal_event,
    is_rfc3339,
    js_number,
    prepare,
)
from hookd.domain.errors import Refused

RECEIVED = "2024-01-01T10:00:00Z"
DEEP = 100_000


def body_of(raw: bytes, received_at: str = RECEIVED) -> bytes:
    """The body hookd would deliver for the ingest request `raw`."""
    return prepare(decode_event(raw).requests[0], received_at).body


def refusal(call: Callable[..., Any], *args: Any) -> ApiError:
    """The refusal `call(*args)` raises, as the API answers it (status, code, message)."""
    with pytest.raises(Refused) as info:
        call(*args)
    return from_refusal(info.value)


def event_with(data: bytes) -> bytes:
    return b'{"event":"cliente.criado","data":' + data + b"}"


# --- the body -----------------------------------------------------------------------


def test_body_is_compact_utf8_in_spec_key_order() -> None:
    raw = (
        '{ "data": {"id": "cliente_123", "nome": "João"},\n'
        '  "timestamp": "2024-01-01T10:00:00Z",\n'
        '  "event": "cliente.criado" }'
    ).encode()
    expected = (
        '{"event":"cliente.criado","timestamp":"2024-01-01T10:00:00Z",'
        '"data":{"id":"cliente_123","nome":"João"}}'
    ).encode()
    assert body_of(raw) == expected


def test_escaped_non_ascii_is_written_unescaped() -> None:
    raw = event_with(b'{"nome":"Jo\\u00e3o","emoji":"\\ud83d\\ude00","cjk":"\\u4e2d"}')
    assert body_of(raw).endswith('"data":{"nome":"João","emoji":"😀","cjk":"中"}}'.encode())


def test_data_keeps_key_order_and_values() -> None:
    data = b'{"z":1,"a":"x","m":{"y":[3,1,2],"b":null},"c":true,"b":false,"e":{},"f":[]}'
    assert body_of(event_with(data)).endswith(b'"data":' + data + b"}")


def test_prepared_event_carries_event_timestamp_and_id() -> None:
    raw = b'{"event":"tarefa.concluida","data":{},"id":"evt_1","timestamp":"2024-05-01T12:00:00Z"}'
    prepared = prepare(decode_event(raw).requests[0], RECEIVED)
    assert prepared.event == "tarefa.concluida"
    assert prepared.timestamp == "2024-05-01T12:00:00Z"
    assert prepared.id == "evt_1"


@pytest.mark.parametrize(
    "timestamp",
    [
        "2024-01-01T10:00:00Z",  # the spec's form
        "2024-01-01T07:00:00.123-03:00",  # offset and fraction: not normalised to UTC
        "2024-01-01t10:00:00z",  # lowercase t and z are RFC 3339 too
        "2016-12-31T23:59:60Z",  # a leap second
    ],
)
def test_given_timestamp_is_kept_unchanged(timestamp: str) -> None:
    raw = b'{"event":"a.b","data":{},"timestamp":"' + timestamp.encode() + b'"}'
    prepared = prepare(decode_event(raw).requests[0], RECEIVED)
    assert prepared.timestamp == timestamp
    assert prepared.body == b'{"event":"a.b","timestamp":"' + timestamp.encode() + b'","data":{}}'


@pytest.mark.parametrize(
    "raw",
    [
        b'{"event":"a.b","data":{}}',  # no timestamp
        b'{"event":"a.b","data":{},"timestamp":null}',  # explicit null
    ],
)
def test_missing_timestamp_becomes_received_at(raw: bytes) -> None:
    prepared = prepare(decode_event(raw).requests[0], "2030-06-15T08:09:10Z")
    assert prepared.timestamp == "2030-06-15T08:09:10Z"
    assert prepared.body == b'{"event":"a.b","timestamp":"2030-06-15T08:09:10Z","data":{}}'


def test_body_does_not_depend_on_id() -> None:
    with_id = body_of(b'{"event":"a.b","data":{"k":1},"id":"x1"}')
    without = body_of(b'{"event":"a.b","data":{"k":1}}')
    assert (
        with_id == without == b'{"event":"a.b","timestamp":"2024-01-01T10:00:00Z","data":{"k":1}}'
    )


# --- numbers ------------------------------------------------------------------------

JS_FLOATS = [
    ("1.0", "1"),  # an integral float loses its ".0"
    ("100.0", "100"),  # ... at any size
    ("1e5", "100000"),  # exponent form of an integer below 1e21 is written out
    ("1e+2", "100"),  # explicit + in the exponent
    ("0.1e1", "1"),  # a fraction with an exponent that makes it integral
    ("-1.5E+3", "-1500"),  # capital E, negative
    ("-0.0", "0"),  # negative zero prints as 0
    ("0.0", "0"),  # zero
    ("1e20", "100000000000000000000"),  # 21 digits: still written in full
    ("123456789012345680000.0", "123456789012345680000"),  # ditto, not a power of ten
    ("9.999999999999999e20", "999999999999999900000"),  # the largest double below 1e21
    ("1e21", "1e+21"),  # from 1e21 on: exponent form with an explicit +
    ("999999999999999999999.0", "1e+21"),  # rounds to 1e21 as a double
    ("1.5e300", "1.5e+300"),  # large with a fraction in the mantissa
    ("1.7976931348623157e308", "1.7976931348623157e+308"),  # the largest double
    ("0.000001", "0.000001"),  # 1e-6 is still decimal
    ("1e-6", "0.000001"),  # ... however it is written
    ("1e-7", "1e-7"),  # below 1e-6: exponent form, no + sign, no padding
    ("-1e-7", "-1e-7"),  # negative small
    ("2.5e-7", "2.5e-7"),  # small with a fraction in the mantissa
    ("-123.456e-10", "-1.23456e-8"),  # normalised mantissa
    ("5e-324", "5e-324"),  # the smallest subnormal
    ("2e-323", "2e-323"),  # another subnormal
    ("123.456", "123.456"),  # an ordinary decimal
    ("0.1", "0.1"),  # shortest digits that round-trip
    ("4.35", "4.35"),  # not 4.3499999999999996
    ("0.30000000000000004", "0.30000000000000004"),  # 0.1 + 0.2: all 17 digits kept
    ("1.00000000000000001", "1"),  # more digits than a double holds: the double is 1
    ("12345.6789e3", "12345678.9"),  # exponent moves the decimal point
]


@pytest.mark.parametrize(("literal", "expected"), JS_FLOATS)
def test_js_number_prints_like_json_stringify(literal: str, expected: str) -> None:
    assert bytes(js_number(literal)) == expected.encode()


@pytest.mark.parametrize(("literal", "expected"), JS_FLOATS)
def test_floats_in_data_are_rewritten_in_the_body(literal: str, expected: str) -> None:
    body = body_of(event_with(b'{"n":' + literal.encode() + b',"l":[' + literal.encode() + b"]}"))
    assert body.endswith(
        b'"data":{"n":' + expected.encode() + b',"l":[' + expected.encode() + b"]}}"
    )


@pytest.mark.parametrize(
    "literal",
    [
        "1e400",  # beyond the largest double: JavaScript would read Infinity
        "-1e400",  # ... negative
        "1.8e308",  # just beyond
    ],
)
def test_numbers_too_large_for_a_double_are_refused(literal: str) -> None:
    with pytest.raises(ValueError, match="too large"):
        js_number(literal)
    error = refusal(body_of, event_with(b'{"n":' + literal.encode() + b"}"))
    assert error.status == 422
    assert literal in error.message


@pytest.mark.parametrize(
    "literal",
    [
        "0",  # zero
        "-1",  # negative
        "42",  # small
        "1704103200",  # a Unix time
        "9007199254740991",  # 2**53 - 1, the largest safe integer in JavaScript
        "-9007199254740991",  # its negative
    ],
)
def test_integers_are_kept_exactly(literal: str) -> None:
    body = body_of(event_with(b'{"n":' + literal.encode() + b"}"))
    assert body.endswith(b'"data":{"n":' + literal.encode() + b"}}")


# --- refusals -----------------------------------------------------------------------

NAME_129 = "a." + "b" * 127
BAD_REQUESTS = [
    # (raw request, status, what the message must mention)
    (b"not json", 400, "JSON"),  # not JSON at all
    (b'{"event":"a.b","data":{}', 400, "JSON"),  # truncated object
    (b"[1, 2", 400, "JSON"),  # truncated array: bad JSON, not "not an object"
    (b'{"event": 5', 400, "JSON"),  # truncated after a wrongly typed field
    (b'{"event":"a.b","data":{}} x', 400, "JSON"),  # trailing garbage
    (b'{"event":"a.b","data":{"n":NaN}}', 400, "JSON"),  # NaN is not JSON
    (b"\xff\xfe{}", 400, "JSON"),  # not UTF-8
    (event_with(b'{"s":"\xc3\x28"}'), 400, "JSON"),  # invalid UTF-8 inside a string
    (b"", 400, "empty"),  # empty body
    (b" \n\t ", 400, "empty"),  # only whitespace
    # 100000 nested objects, then 100000 nested arrays
    (event_with(b'{"x":' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"}"), 400, "deep"),
    (event_with(b'{"x":' + b"[" * DEEP + b"]" * DEEP + b"}"), 400, "deep"),
    (b"[]", 422, "object"),  # JSON, but an array
    (b'"cliente.criado"', 422, "object"),  # a string
    (b"null", 422, "object"),  # null
    (b"42", 422, "object"),  # a number
    (b'{"data":{}}', 422, "event"),  # event missing
    (b'{"event":"","data":{}}', 422, "event"),  # event empty
    (b'{"event":5,"data":{}}', 422, "event"),  # event not a string
    (b'{"event":null,"data":{}}', 422, "event"),  # event null
    (b'{"event":"cliente","data":{}}', 422, "event"),  # not dotted
    (b'{"event":"Cliente.Criado","data":{}}', 422, "event"),  # not lowercase
    (b'{"event":"cliente..criado","data":{}}', 422, "event"),  # empty segment
    (b'{"event":"cliente.criado.","data":{}}', 422, "event"),  # trailing dot
    (b'{"event":"1cliente.criado","data":{}}', 422, "event"),  # starts with a digit
    (b'{"event":"cliente criado.x","data":{}}', 422, "event"),  # a space
    (b'{"event":"cliente.*","data":{}}', 422, "event"),  # a pattern is not an event
    (b'{"event":"' + NAME_129.encode() + b'","data":{}}', 422, "event"),  # 129 characters
    (b'{"event":"cliente.criado\\n","data":{}}', 422, "event"),  # trailing newline
    (b'{"event":"a.b"}', 422, "data"),  # data missing
    (b'{"event":"a.b","data":[]}', 422, "data"),  # data an array
    (b'{"event":"a.b","data":"x"}', 422, "data"),  # data a string
    (b'{"event":"a.b","data":null}', 422, "data"),  # data null
    (b'{"event":"a.b","data":{},"timestamp":1704103200}', 422, "timestamp"),  # a number
    (b'{"event":"a.b","data":{},"id":""}', 422, "id"),  # empty id
    (b'{"event":"a.b","data":{},"id":"has space"}', 422, "id"),  # not header-safe
    (b'{"event":"a.b","data":{},"id":"-x"}', 422, "id"),  # must start alphanumeric
    (b'{"event":"a.b","data":{},"id":"' + b"a" * 129 + b'"}', 422, "id"),  # 129 characters
    (b'{"event":"a.b","data":{},"id":"evt_1\\n"}', 422, "id"),  # a newline in a header
    (b'{"event":"a.b","data":{},"id":5}', 422, "id"),  # not a string
]


@pytest.mark.parametrize(("raw", "status", "mentions"), BAD_REQUESTS)
def test_bad_requests_are_refused_with_the_right_status(
    raw: bytes, status: int, mentions: str
) -> None:
    error = refusal(body_of, raw)
    assert (error.status, mentions.lower() in error.message.lower()) == (status, True), (
        error.message
    )


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{", "invalid_json"),  # syntax
        (b"", "empty_body"),  # nothing
        (b'{"event":"a"}', "invalid_event"),  # shape
        (b'{"event":"a","data":{}}', "invalid_event"),  # validation
    ],
)
def test_refusals_carry_a_stable_code(raw: bytes, code: str) -> None:
    assert refusal(body_of, raw).code == code


# --- RFC 3339, event names, timestamps ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-01T10:00:00Z", True),  # the spec's form
        ("2024-01-01T10:00:00.5Z", True),  # a fraction
        ("2024-01-01T10:00:00.123456789+05:30", True),  # nanoseconds and an offset
        ("2024-01-01T10:00:00-03:00", True),  # Brazil
        ("2024-01-01t10:00:00z", True),  # lowercase separators
        ("2016-12-31T23:59:60Z", True),  # leap second
        ("2024-02-29T00:00:00Z", True),  # leap year
        ("2000-02-29T00:00:00Z", True),  # divisible by 400: leap
        ("2023-02-29T00:00:00Z", False),  # not a leap year
        ("2100-02-29T00:00:00Z", False),  # divisible by 100: not leap
        ("2024-04-31T00:00:00Z", False),  # April has 30 days
        ("2024-13-01T00:00:00Z", False),  # month 13
        ("2024-00-01T00:00:00Z", False),  # month 0
        ("2024-01-00T00:00:00Z", False),  # day 0
        ("2024-01-01T24:00:00Z", False),  # hour 24
        ("2024-01-01T10:60:00Z", False),  # minute 60
        ("2024-01-01T10:00:61Z", False),  # second 61
        ("2024-01-01T10:00:00+24:00", False),  # offset hour 24
        ("2024-01-01T10:00:00+05:60", False),  # offset minute 60
        ("2024-01-01T10:00:00", False),  # no offset
        ("2024-01-01 10:00:00Z", False),  # space separator
        ("2024-01-01T10:00Z", False),  # no seconds
        ("2024-1-01T10:00:00Z", False),  # one-digit month
        ("2024-01-01T10:00:00.Z", False),  # empty fraction
        ("yesterday", False),  # prose
        ("", False),  # empty
        ("2024-01-01T10:00:00Z\n", False),  # trailing newline
        ("٢٠٢٤-01-01T10:00:00Z", False),  # Arabic-Indic digits are not RFC 3339 digits
    ],
)
def test_is_rfc3339(text: str, expected: bool) -> None:
    assert is_rfc3339(text) is expected


@pytest.mark.parametrize(
    "name",
    [
        "cliente.criado",  # two segments
        "whatsapp.mensagem.recebida",  # three
        "email.enviado",  # short
        "tarefa_nova.v2",  # underscore and digit
        "a." + "b" * 126,  # 128 characters
    ],
)
def test_check_event_name_accepts(name: str) -> None:
    check_event_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",  # empty
        "cliente",  # one segment
        "Cliente.criado",  # uppercase
        ".criado",  # leading dot
        "cliente.",  # trailing dot
        "cliente-criado.x",  # hyphen
        "cliente.criado ",  # trailing space
        "cliente.criado\n",  # trailing newline
        "*",  # a pattern
        NAME_129,  # 129 characters
    ],
)
def test_check_event_name_refuses(name: str) -> None:
    error = refusal(check_event_name, name, "type")
    assert error.status == 422
    assert error.message.startswith("type ")


@pytest.mark.parametrize(
    ("unix", "expected"),
    [
        (0, "1970-01-01T00:00:00Z"),  # the epoch
        (1704103200, "2024-01-01T10:00:00Z"),  # the spec's example time
        (1704103200.999, "2024-01-01T10:00:00Z"),  # whole seconds: the fraction is dropped
        (1709164800, "2024-02-29T00:00:00Z"),  # a leap day
    ],
)
def test_format_timestamp(unix: float, expected: str) -> None:
    assert format_timestamp(unix) == expected
    assert is_rfc3339(expected)


# --- batches ------------------------------------------------------------------------

ITEM = b'{"event":"cliente.criado","data":{"id":1}}'


def test_batch_json_array() -> None:
    raw = b'[{"event":"cliente.criado","data":{"id":1}}, {"event":"tarefa.concluida","data":{}}]'
    requests = decode_batch(raw, ndjson=False).requests
    assert [r.event for r in requests] == ["cliente.criado", "tarefa.concluida"]
    assert all(isinstance(r, IngestRequest) for r in requests)


def test_batch_ndjson_skips_blank_lines_and_accepts_crlf() -> None:
    raw = b'{"event":"a.b","data":{}}\r\n\n  \n{"event":"c.d","data":{"k":1.0}}\n'
    requests = decode_batch(raw, ndjson=True).requests
    assert [r.event for r in requests] == ["a.b", "c.d"]
    assert prepare(requests[1], RECEIVED).body.endswith(b'"data":{"k":1}}')


@pytest.mark.parametrize("ndjson", [False, True])
def test_batch_of_max_size_is_accepted(ndjson: bool) -> None:
    raw = b"\n".join([ITEM] * MAX_BATCH) if ndjson else b"[" + b",".join([ITEM] * MAX_BATCH) + b"]"
    assert len(decode_batch(raw, ndjson).requests) == MAX_BATCH == 1000


@pytest.mark.parametrize("ndjson", [False, True])
def test_batch_over_max_size_is_413(ndjson: bool) -> None:
    count = MAX_BATCH + 1
    raw = b"\n".join([ITEM] * count) if ndjson else b"[" + b",".join([ITEM] * count) + b"]"
    error = refusal(decode_batch, raw, ndjson)
    assert error.status == 413
    assert "1001" in error.message


@pytest.mark.parametrize(
    ("raw", "ndjson", "status", "mentions"),
    [
        (b"[" + ITEM + b',{"event":"a.b"}]', False, 422, "$[1]"),  # item 1 lacks data
        (b"[" + ITEM + b"," + ITEM + b',{"event":"a.b","data":[]}]', False, 422, "$[2]"),
        (b"[" + ITEM + b',{"event":"a.b","data":{"n":1e400}}]', False, 422, "$[1]"),
        (ITEM + b'\n{"event":"a.b"}', True, 422, "line 2"),  # NDJSON line 2 lacks data
        (ITEM + b"\n" + ITEM + b"\n{oops", True, 400, "line 3"),  # NDJSON line 3 not JSON
        (b"[]", False, 422, "at least one"),  # empty array
        (ITEM, False, 422, "array"),  # an object where an array is expected
        (b"", False, 400, "empty"),  # empty body
        (b"\n \n", True, 400, "empty"),  # NDJSON with no lines
    ],
)
def test_bad_batches(raw: bytes, ndjson: bool, status: int, mentions: str) -> None:
    error = refusal(decode_batch, raw, ndjson)
    assert (error.status, mentions in error.message) == (status, True), error.message


def test_batch_item_failing_validation_is_named_by_prepare() -> None:
    requests = decode_batch(b"[" + ITEM + b',{"event":"Bad","data":{}}]', ndjson=False).requests
    prepare(requests[0], RECEIVED, 0)
    error = refusal(prepare, requests[1], RECEIVED, 1)
    assert error.status == 422
    assert error.message.startswith("item 1: $.event")


# --- the Node receiver --------------------------------------------------------------

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not on PATH")
NODE_ROUNDTRIP = """
const chunks = [];
process.stdin.on("data", (c) => chunks.push(c));
process.stdin.on("end", () => {
  process.stdout.write(JSON.stringify(JSON.parse(Buffer.concat(chunks).toString("utf8"))));
});
"""


def node_reserialise(body: bytes) -> bytes:
    assert NODE is not None
    done = subprocess.run(
        [NODE, "-e", NODE_ROUNDTRIP], input=body, capture_output=True, timeout=30, check=True
    )
    return done.stdout


@needs_node
@pytest.mark.parametrize(
    "raw",
    [
        # floats in every shape JavaScript prints differently from msgspec
        event_with(b'{"a":1.0,"b":1e5,"c":-0.0,"d":1e21,"e":1e-7,"f":0.000001,"g":1.5e300}'),
        event_with(b'{"h":123.456,"i":5e-324,"j":1.7976931348623157e308,"k":-1.5E+3}'),
        event_with(b'{"l":0.30000000000000004,"m":9.999999999999999e20,"n":2.5e-7}'),
        # safe integers
        event_with(b'{"a":0,"b":-1,"c":9007199254740991,"d":-9007199254740991}'),
        # non-ASCII text, raw and escaped, including astral and U+2028/U+2029
        event_with('{"nome":"João","cidade":"São Paulo","x":"中文 😀"}'.encode()),
        event_with(b'{"e":"Jo\\u00e3o \\ud83d\\ude00 \\u2028 \\u2029"}'),
        # control characters: JSON.stringify writes \\b \\f \\n \\r \\t and \\u00XX
        event_with(b'{"c":"\\u0000\\u0001\\u0008\\u000b\\u001f\\u007f\\b\\f\\n\\r\\t"}'),
        # escapes: quote, backslash, an escaped solidus, a raw solidus
        event_with(b'{"q":"say \\"oi\\"","b":"C:\\\\dir","s":"a\\/b","u":"http://x/y"}'),
        # nesting, empty containers, literals, keys that need escaping
        event_with(b'{"a":[1,[2,{"b":null,"c":true,"d":false}]],"e":{},"f":[],"g\\"h":{"i":[]}}'),
        # keys that look like integers: JavaScript enumerates them first, ascending
        event_with(b'{"nome":"x","2024":1,"2023":2}'),
        # a timestamp with an offset and a fraction
        b'{"event":"whatsapp.mensagem.recebida","timestamp":"2024-01-01T07:00:00.5-03:00",'
        b'"data":{"de":"+55 11 99999-0000","texto":"Ol\\u00e1!\\n"}}',
    ],
)
def test_node_json_stringify_reproduces_the_body(raw: bytes) -> None:
    body = body_of(raw)
    assert node_reserialise(body) == body


@needs_node
@pytest.mark.parametrize(
    "literal",
    [
        b"9007199254740993",  # 2**53 + 1: not a double
        b"12345678901234567890",  # beyond int64
        b"-9223372036854775809",  # below int64
        b"1000000000000000000000",  # 1e21 written as an integer: JavaScript prints 1e+21
    ],
)
def test_node_integers_beyond_doubles_are_refused_or_survive(literal: bytes) -> None:
    """Such an integer cannot be delivered as sent: refuse it (422) or keep Node's reading."""
    try:
        body = body_of(event_with(b'{"n":' + literal + b"}"))
    except Refused as error:
        refused: int | None = from_refusal(error).status
    else:
        refused = None
    if refused is not None:
        assert refused == 422
    else:
        assert node_reserialise(body) == body


# -- what a relay accepts: extra envelope keys, lone surrogates, any timestamp string -----


def test_extra_envelope_keys_are_delivered_after_data_and_id_is_not() -> None:
    raw = b'{"version":"1","event":"a.b","id":"e1","data":{"k":1},"x":{"n":[1,2]},"t":null}'
    decoded = decode_event(raw)
    [request], [extra] = decoded.requests, decoded.extras
    body = prepare(request, RECEIVED, extra=extra).body
    assert body == (
        b'{"event":"a.b","timestamp":"2024-01-01T10:00:00Z","data":{"k":1},'
        b'"version":"1","x":{"n":[1,2]},"t":null}'
    )


def test_an_extra_key_is_still_checked_like_data() -> None:
    error = refusal(decode_event, b'{"event":"a.b","data":{},"n":9007199254740993}')
    assert (error.status, "$.n" in error.message) == (422, True)
    error = refusal(decode_event, b'{"event":"a.b","data":{},"timestamp":5,"v":1}')
    assert (error.status, "$.timestamp" in error.message) == (422, True)


def test_a_batch_keeps_each_items_extras() -> None:
    raw = b'[{"event":"a.b","data":{}},{"event":"a.b","data":{},"v":2}]'
    assert decode_batch(raw, ndjson=False).extras == [None, {"v": 2}]
    assert decode_batch(raw[1:-1].replace(b"},{", b"}\n{"), ndjson=True).extras == [
        None,
        {"v": 2},
    ]


@pytest.mark.parametrize(
    ("text", "delivered", "repaired"),
    [
        (rb"\ud83d", "\ufffd", 1),  # half an emoji, as JSON.stringify writes it
        (rb"a\ude00b", "a\ufffdb", 1),  # a lone low half
        (rb"\ud83d\ud83d\ude00", "\ufffd\U0001f600", 1),  # a lone half, then a pair
        (rb"\ud83d\ude00", "\U0001f600", 0),  # a pair is an emoji
        (rb"\\ud83d", "\\ud83d", 0),  # an escaped backslash, then text
        (rb"\\\ud83d", "\\\ufffd", 1),  # an escaped backslash, then a lone half
        (rb"\uD83D", "\ufffd", 1),  # upper-case hex
        (rb"\u00e9", "\xe9", 0),  # an escape, but no surrogate: nothing repaired
    ],
)
def test_lone_surrogates_become_the_replacement_character(
    text: bytes, delivered: str, repaired: int
) -> None:
    decoded = decode_event(b'{"event":"a.b","data":{"s":"' + text + b'"}}')
    assert decoded.requests[0].data == {"s": delivered}
    assert decoded.repaired == repaired


@pytest.mark.parametrize("timestamp", ["", "2024-01-01", "ontem", "2024-01-01T10:00:00"])
def test_any_timestamp_string_is_passed_through(timestamp: str) -> None:
    raw = json.dumps({"event": "a.b", "data": {}, "timestamp": timestamp}).encode()
    prepared = prepare(decode_event(raw).requests[0], RECEIVED)
    assert prepared.timestamp == timestamp
    assert (
        prepared.body
        == json.dumps(
            {"event": "a.b", "timestamp": timestamp, "data": {}}, separators=(",", ":")
        ).encode()
    )


# --- word for word: status, code and message of each refusal --------------------------

NESTED = b'{"event":"a.b","data":{"x":' + b"[" * DEEP + b"]" * DEEP + b"}}"
UNSAFE = b'{"event":"a.b","data":{"a":[1,9007199254740993]}}'
NOT_EXACT = " is an integer JavaScript cannot hold exactly (9007199254740993); send it as a string"
# Requests with an envelope key beyond the spec's ("x" first) take the slower path.
WRONG_EVENT = b'{"x":1,"event":5,"data":{}}'
TOO_LARGE = b'{"x":1,"event":"a.b","data":{"v":1e999}}'
EXPECTED_STR = "Expected `str`, got `int` - at `$.event`"
NO_DOUBLE = "number 1e999 is too large to deliver - at `$[...][...]`"


@pytest.mark.parametrize(
    ("call", "raw", "status", "code", "message"),
    [
        ("event", b"", 400, "empty_body", "empty body: expected a JSON object"),
        ("event", b"{", 400, "invalid_json", "invalid JSON: Input data was truncated"),
        ("event", NESTED, 400, "invalid_json", "invalid JSON: nested too deeply"),
        ("event", UNSAFE, 422, "invalid_event", "$.data.a[1]" + NOT_EXACT),
        (  # a type error first, then nesting only the syntax check reaches
            "event",
            b'{"event":5,"data":{"x":' + b"[" * DEEP + b"]" * DEEP + b"}}",
            400,
            "invalid_json",
            "invalid JSON: nested too deeply",
        ),
        ("event", WRONG_EVENT, 422, "invalid_event", EXPECTED_STR),
        ("event", TOO_LARGE, 422, "invalid_event", NO_DOUBLE),
        (
            "json",
            b"[" + ITEM + b"," + WRONG_EVENT + b"]",
            422,
            "invalid_event",
            "item 1: " + EXPECTED_STR,
        ),
        (
            "json",
            b'[{"x":1,"event":"a.b","data":{}},5]',
            422,
            "invalid_event",
            "Expected `object`, got `int` - at `$[1]`",
        ),
        ("ndjson", ITEM + b"\n" + WRONG_EVENT, 422, "invalid_event", "line 2: " + EXPECTED_STR),
        ("ndjson", ITEM + b"\n" + TOO_LARGE, 422, "invalid_event", "line 2: " + NO_DOUBLE),
        (  # an extra envelope key is checked like data
            "event",
            b'{"event":"a.b","data":{},"x":{"a":[1,9007199254740993]}}',
            422,
            "invalid_event",
            "$.x.a[1]" + NOT_EXACT,
        ),
        (
            "event",
            b'{"event":"a.b","data":[],"x":1}',
            422,
            "invalid_event",
            "Expected `object`, got `array` - at `$.data`",
        ),
        (
            "json",
            b"[" + ITEM + b"," + NESTED + b"]",
            400,
            "invalid_json",
            "invalid JSON: nested too deeply",
        ),
        (
            "json",
            b"[" + ITEM + b"," + UNSAFE + b"]",
            422,
            "invalid_event",
            "item 1: $.data.a[1]" + NOT_EXACT,
        ),
        ("json", b"[]", 422, "invalid_batch", "a batch needs at least one event"),
        (
            "json",
            b" " + ITEM,
            422,
            "invalid_batch",
            "a batch is a JSON array of events (or NDJSON)",
        ),
        (
            "json",
            b"[" + b",".join([ITEM] * (MAX_BATCH + 1)) + b"]",
            413,
            "batch_too_large",
            "a batch holds at most 1000 events, got 1001",
        ),
        ("ndjson", b"\n \n", 400, "empty_body", "empty body: expected one JSON object per line"),
        (
            "ndjson",
            ITEM + b"\n" + NESTED,
            400,
            "invalid_json",
            "line 2: invalid JSON: nested too deeply",
        ),
        (  # a type error found before the syntax error: still a 400, still naming the line
            "ndjson",
            ITEM + b'\n{"event": 5',
            400,
            "invalid_json",
            "line 2: invalid JSON: Input data was truncated",
        ),
        (
            "ndjson",
            ITEM + b'\n{"event":"a.b"}',
            422,
            "invalid_event",
            "line 2: Object missing required field `data`",
        ),
        (
            "ndjson",
            ITEM + b'\n{"event":"a.b","data":[],"extra":1}',
            422,
            "invalid_event",
            "line 2: Expected `object`, got `array` - at `$.data`",
        ),
        (
            "ndjson",
            ITEM + b'\n{"event":"a.b","data":{},"extra":[1,{"n":9007199254740993}]}',
            422,
            "invalid_event",
            "item 1: $.extra[1].n" + NOT_EXACT,
        ),
    ],
)
def test_refusals_word_for_word(
    call: str, raw: bytes, status: int, code: str, message: str
) -> None:
    error = (
        refusal(decode_event, raw)
        if call == "event"
        else refusal(decode_batch, raw, call == "ndjson")
    )
    assert (error.status, error.code, error.message) == (status, code, message)


def test_prepare_names_the_item_word_for_word() -> None:
    own = decode_event(b'{"event":"hookd.x","data":{}}').requests[0]
    reserved = "$.event: names starting with 'hookd.' are hookd's own events"
    for item, where in ((None, ""), (3, "item 3: ")):
        error = refusal(prepare, own, RECEIVED, item)
        assert (error.status, error.code, error.message) == (422, "invalid_event", where + reserved)
    bad_id = decode_event(b'{"event":"a.b","data":{},"id":"' + b"-" * 100 + b'"}').requests[0]
    for item, where in ((None, ""), (2, "item 2: ")):
        error = refusal(prepare, bad_id, RECEIVED, item)
        assert (error.code, error.message) == (
            "invalid_event",
            f"{where}$.id must be 1-128 characters of letters, digits and . _ : -, "
            f"got {'-' * 80!r}",
        )


def test_check_event_name_word_for_word() -> None:
    error = refusal(check_event_name, "B" * 100)
    assert (error.code, error.message) == (
        "invalid_event",
        f"$.event must be a dotted lowercase name like 'cliente.criado', got {'B' * 80!r}",
    )
    check_event_name("a." + "b" * 126)  # 128 characters
    # A name no other test uses: one already checked is cached and never measured again.
    check_event_name("length.limit_" + "z" * 115)  # 128 characters, checked afresh


def test_internal_event_body() -> None:
    event = internal_event("hookd.teste", {"a": 1}, "2024-01-01T10:00:00.000Z")
    assert (event.event, event.timestamp, event.body, event.id) == (
        "hookd.teste",
        "2024-01-01T10:00:00.000Z",
        b'{"event":"hookd.teste","timestamp":"2024-01-01T10:00:00.000Z","data":{"a":1}}',
        None,
    )


def test_index_like_keys_come_first_in_javascripts_order() -> None:
    # JavaScript puts array-index keys (0 .. 2**32 - 2, no leading zeros) first, ascending;
    # "01" and 2**32 - 1 are ordinary keys and keep their place.
    raw = event_with(
        b'{"b":1,"01":2,"1":3,"0":4,"4294967294":5,"4294967295":6,"n":1234567890123456}'
    )
    assert body_of(raw) == (
        b'{"event":"cliente.criado","timestamp":"2024-01-01T10:00:00Z","data":'
        b'{"0":4,"1":3,"4294967294":5,"b":1,"01":2,"4294967295":6,"n":1234567890123456}}'
    )


def test_extras_are_kept_when_the_body_is_rewritten_for_javascript() -> None:
    decoded = decode_event(b'{"event":"a.b","data":{"1":0,"0":0},"x":{"1":1,"0":0}}')
    assert decoded.extras == [{"x": {"0": 0, "1": 1}}]
    assert list(decoded.extras[0]["x"]) == ["0", "1"]  # type: ignore[index]


def test_repaired_surrogates_are_counted() -> None:
    assert decode_event(b'{"event":"a.b","data":{}}').repaired == 0
    single = decode_event(b'{"event":"a.b","data":{"s":"\\ud800\\udc00 \\ud800 \\udfff"}}')
    assert single.repaired == 2  # a pair is no lone surrogate
    lines = b'{"event":"a.b","data":{"s":"\\ud800"}}\n{"event": "a.b", "data": {"s": "\\udfff"}}'
    batch = decode_batch(lines, ndjson=True)  # spaces inside a line are not line breaks
    assert (batch.repaired, len(batch.requests)) == (2, 2)


def test_a_json_batch_may_start_with_whitespace() -> None:
    assert len(decode_batch(b" \n [" + ITEM + b"]", ndjson=False).requests) == 1

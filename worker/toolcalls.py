"""Tool calls read out of a model's text as it streams, in the formats the common families write:

- Hermes / Qwen (and llamaq's generic prompt): `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`;
- Mistral: `[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]`;
- Llama 3.x: `{"name": ..., "parameters": {...}}`, after `<|python_tag|>` or as the whole answer;
- the generic fallback: a JSON call object (or a list of them) as the whole answer.

Only a function among the request's tools counts as a call: any other text, JSON included, stays content.
A call goes out as OpenAI streams it: first its index, id and name, then its arguments in pieces.
"""

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

MARKERS = ("<tool_call>", "[TOOL_CALLS]", "<|python_tag|>")
# Text that may come between and after calls: closing tags, list punctuation, separators.
BETWEEN = ("</tool_call>", "<tool_call>", "[TOOL_CALLS]", "<|python_tag|>", ",", ";", "[", "]")
ARGUMENT_KEYS = ("arguments", "parameters")


def call_id() -> str:
    return "call_" + secrets.token_hex(12)


@dataclass
class Call:
    id: str
    name: str
    arguments: str = ""


@dataclass
class Parsed:
    """What a piece of output became: content text and call deltas (OpenAI's `delta.tool_calls` entries)."""

    content: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)


class ToolCallParser:
    def __init__(self, functions: list[str]) -> None:
        self._functions = set(functions)
        self._text = ""
        self._pos = 0  # text before it is handled
        self._in_calls = False  # after a marker or a call: waiting for the next call or the end of calls
        self._call_start: int | None = None  # a call object being read
        self._sent_arguments = 0
        self._current: Call | None = None  # the call that object is, once its name is read
        self.calls: list[Call] = []
        self.content: list[str] = []

    def feed(self, text: str) -> Parsed:
        self._text += text
        out = Parsed()
        while self._step(out, final=False):
            pass
        return out

    def finish(self) -> Parsed:
        out = Parsed()
        while self._step(out, final=True):
            pass
        rest = self._text[self._pos :]
        if rest:
            self._content(out, rest)
            self._pos = len(self._text)
        return out

    def message_content(self) -> str | None:
        """The answer's content: None when it made calls and said nothing else, as OpenAI's."""
        text = "".join(self.content)
        return (text.strip() or None) if self.calls else text

    # -- one step of reading: True when it moved on ---------------------------------------------------------

    def _step(self, out: Parsed, final: bool) -> bool:
        if self._call_start is not None:
            return self._read_call(out, final)
        if self._in_calls:
            return self._between(out, final)
        return self._outside(out, final)

    def _outside(self, out: Parsed, final: bool) -> bool:
        rest = self._text[self._pos :]
        found = [(rest.find(m), m) for m in MARKERS if m in rest]
        if found:
            at, marker = min(found)
            self._content(out, rest[:at])
            self._pos += at + len(marker)
            self._in_calls = True
            return True
        lead = rest.lstrip()
        if not final and lead and any(m.startswith(lead) for m in MARKERS):
            return False  # a marker may be arriving
        if not "".join(self.content).strip() and lead[:1] in ("{", "["):
            inner = lead[1:].lstrip() if lead[0] == "[" else lead
            if not inner and not final:
                return False  # a list: of calls only if an object comes next
            if inner[:1] == "{":
                self._pos += len(rest) - len(lead)  # a bare JSON call (or list) may be the whole answer
                self._in_calls = True
                return True
        if final:
            return False
        # Hold back what may be the start of a marker, or leading space before a bare JSON call.
        hold = max((k for m in MARKERS for k in range(1, len(m)) if rest.endswith(m[:k])), default=0)
        if not "".join(self.content).strip() and not rest.strip():
            hold = len(rest)
        self._content(out, rest[: len(rest) - hold])
        self._pos += len(rest) - hold
        return False

    def _between(self, out: Parsed, final: bool) -> bool:
        rest = self._text[self._pos :]
        stripped = rest.lstrip()
        skipped = len(rest) - len(stripped)
        for token in BETWEEN:
            if stripped.startswith(token):
                self._pos += skipped + len(token)
                return True
        if stripped.startswith("{"):
            self._pos += skipped
            self._call_start, self._sent_arguments = self._pos, 0
            return True
        if not stripped or (not final and any(t.startswith(stripped) for t in BETWEEN)):
            if final:
                self._pos = len(self._text)  # only space after the calls
            return False
        self._in_calls = False  # anything else is content again
        return True

    def _read_call(self, out: Parsed, final: bool) -> bool:
        start = self._call_start
        assert start is not None
        fields, end = scan_object(self._text, start)
        name = fields.get("name")
        if self._current is None and name is not None and name[2]:
            function = _string(self._text, name)
            if function in self._functions:
                self._current = Call(call_id(), function)
                self.calls.append(self._current)
                out.calls.append(_opening(len(self.calls) - 1, self._current))
        if self._current is not None:
            self._send_arguments(out, fields, end is not None)
        if end is None and not final:
            return False
        if self._current is None:  # not a call of these tools: the object is content
            self._content(out, self._text[start : end if end is not None else len(self._text)])
            self._in_calls = False
        self._call_start, self._current = None, None
        self._pos = end if end is not None else len(self._text)
        return True

    def _send_arguments(self, out: Parsed, fields: dict[str, tuple[int, int, bool]], complete: bool) -> None:
        value = next((fields[key] for key in ARGUMENT_KEYS if key in fields), None)
        call, index = self.calls[-1], len(self.calls) - 1
        if value is None:
            piece = "{}" if complete and not call.arguments else ""
        else:
            begin, stop, done = value
            if self._text[begin] == '"':  # arguments written as a JSON string: its text once it has closed
                piece = json.loads(self._text[begin:stop]) if done and not call.arguments else ""
            else:
                piece = self._text[begin + self._sent_arguments : stop]
                self._sent_arguments = stop - begin
        if piece:
            call.arguments += piece
            out.calls.append({"index": index, "function": {"arguments": piece}})

    def _content(self, out: Parsed, text: str) -> None:
        if text:
            self.content.append(text)
            out.content += text


def _opening(index: int, call: Call) -> dict[str, Any]:
    return {"index": index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}


def _string(text: str, span: tuple[int, int, bool]) -> str:
    try:
        value = json.loads(text[span[0] : span[1]])
    except ValueError:
        return ""
    return value if isinstance(value, str) else ""


def scan_object(text: str, start: int) -> tuple[dict[str, tuple[int, int, bool]], int | None]:
    """The top-level keys of the JSON object at `start`, each with its value's span and whether the value
    is complete; and the index after the object, or None while it is unfinished."""
    fields: dict[str, tuple[int, int, bool]] = {}
    i = _space(text, start + 1)
    while i < len(text):
        if text[i] == "}":
            return fields, i + 1
        if text[i] == ",":
            i = _space(text, i + 1)
            continue
        key_end = value_end(text, i)
        if key_end is None or text[i] != '"':
            return fields, None if key_end is None else _malformed(text)
        colon = _space(text, key_end)
        if colon >= len(text):
            return fields, None
        if text[colon] != ":":
            return fields, _malformed(text)
        begin = _space(text, colon + 1)
        if begin >= len(text):
            return fields, None
        stop = value_end(text, begin)
        key = _string(text, (i, key_end, True))
        fields[key] = (begin, stop if stop is not None else len(text), stop is not None)
        if stop is None:
            return fields, None
        i = _space(text, stop)
    return fields, None


def _malformed(text: str) -> int:
    return len(text)  # not JSON: the rest is read as it is


def value_end(text: str, i: int) -> int | None:
    """The index after the JSON value that starts at `i`, or None when the text ends inside it."""
    if text[i] == '"':
        j = i + 1
        while j < len(text):
            if text[j] == "\\":
                j += 2
                continue
            if text[j] == '"':
                return j + 1
            j += 1
        return None
    if text[i] in "{[":
        depth, j, in_string = 0, i, False
        while j < len(text):
            ch = text[j]
            if in_string:
                if ch == "\\":
                    j += 1
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch in "{[":
                depth += 1
            elif ch in "}]":
                depth -= 1
                if depth == 0:
                    return j + 1
            j += 1
        return None
    j = i
    while j < len(text) and text[j] not in ",}] \n\t\r":
        j += 1
    return j if j < len(text) else None


def _space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \n\t\r":
        i += 1
    return i

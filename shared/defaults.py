"""Request fields the OpenAI spec defines that this server does not implement, and the values that ask for the
default behaviour. Clients send many fields with their default value (`logprobs: false`, `functions: []`,
`store: false`): those are accepted and dropped, because the answer is exactly what the field asks for. Any
other value is refused with a 400 that names the field: never silently ignored.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic_core import PydanticCustomError

UNSUPPORTED = "unsupported_field"  # the pydantic error type; its context names the field


@dataclass(frozen=True)
class DefaultOnly:
    """A field accepted only with one of `values` (compared with their types: `0` is not `false`)."""

    values: tuple[Any, ...]
    says: str  # how the README and the error name the accepted values
    when: Callable[[dict[str, Any]], bool] = lambda body: True  # extra condition on the rest of the body

    def accepts(self, value: Any, body: dict[str, Any]) -> bool:
        same = any(type(value) is type(allowed) and value == allowed for allowed in self.values)
        return same and self.when(body)


def _no_functions(body: dict[str, Any]) -> bool:
    return not body.get("functions")


NULL = DefaultOnly((None,), "null")
FALSE = DefaultOnly((None, False), "false or null")
EMPTY_LIST = DefaultOnly((None, []), "[] or null")
EMPTY_OBJECT = DefaultOnly((None, {}), "{} or null")

CHAT: dict[str, DefaultOnly] = {
    "logit_bias": EMPTY_OBJECT,
    # The deprecated function calling (`tools` replaced it): without functions there is nothing to call.
    "functions": EMPTY_LIST,
    "function_call": DefaultOnly((None, "none", "auto"), '"none", "auto" or null, without functions', _no_functions),
    "store": FALSE,
    "metadata": EMPTY_OBJECT,
    "audio": NULL,
    "modalities": DefaultOnly((None, ["text"]), '["text"] or null'),
    "prediction": NULL,
    "reasoning_effort": DefaultOnly((None, "none"), '"none" or null'),
    "verbosity": DefaultOnly((None, "medium"), '"medium" or null'),
    "service_tier": DefaultOnly((None, "auto", "default"), '"auto", "default" or null'),
    "web_search_options": NULL,
    "moderation": NULL,
    "prompt_cache_retention": DefaultOnly((None, "in_memory"), '"in_memory" or null'),
    "prompt_cache_options": NULL,
}

COMPLETION: dict[str, DefaultOnly] = {
    "logit_bias": EMPTY_OBJECT,
    "echo": FALSE,
    "best_of": DefaultOnly((None, 1), "1 or null"),
    "suffix": DefaultOnly((None, ""), '"" or null'),
}

# In an assistant message of the history: what a returned message carries when it made no call.
ASSISTANT_MESSAGE: dict[str, DefaultOnly] = {
    "function_call": NULL,
    "audio": NULL,
}


def drop_defaults(body: Any, fields: dict[str, DefaultOnly]) -> Any:
    """`body` without the fields whose values ask for the default; any other value of one is refused by name."""
    present = sorted(fields.keys() & body.keys()) if isinstance(body, dict) else []
    if not present:
        return body
    for name in present:
        if not fields[name].accepts(body[name], body):
            raise PydanticCustomError(UNSUPPORTED, refusal(name, fields), {"field": name})
    return {key: value for key, value in body.items() if key not in fields}


def refusal(name: str, fields: dict[str, DefaultOnly]) -> str:
    return f"'{name}' is not supported by this server; only its default ({fields[name].says}) is accepted"

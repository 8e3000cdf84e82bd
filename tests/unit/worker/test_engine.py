"""worker/engine.py with a FakeLlama: prompt preparation, context check, stop strings, finish reasons."""

import pytest

from shared.errors import ContextLengthExceeded, InvalidRequest
from shared.payload import Params
from tests.fakes import BOS, OFFSET, FakeLlama, chat_job, completion_job, make_engine
from worker.engine import Engine, Prepared, Progress, StopMatcher


def _run(engine: Engine, prepared: Prepared, params: Params) -> tuple[list[str], Progress]:
    progress = Progress(prompt_tokens=len(prepared.tokens))
    pieces = list(engine.generate(prepared, params, progress))
    return pieces, progress


def _complete(reply: str, **params: object) -> tuple[list[str], Progress]:
    engine = make_engine(FakeLlama(reply))
    job = completion_job("Once", **params)
    return _run(engine, engine.prepare(job), job.params)


# --- StopMatcher -------------------------------------------------------------------------------------


def test_without_stops_text_passes_through() -> None:
    matcher = StopMatcher([])
    assert matcher.feed("abc") == ("abc", False)
    assert matcher.flush("") == ""


def test_stop_inside_one_piece_cuts_before_it() -> None:
    assert StopMatcher(["END"]).feed("abcENDdef") == ("abc", True)


def test_stop_split_across_pieces_is_found_and_never_leaked() -> None:
    matcher = StopMatcher(["<|end|>"])
    assert matcher.feed("ab<|") == ("ab", False)
    assert matcher.feed("en") == ("", False)
    assert matcher.feed("d|>tail") == ("", True)


def test_held_back_prefix_is_released_when_it_is_not_a_stop() -> None:
    matcher = StopMatcher(["<|end|>"])
    assert matcher.feed("x<|e") == ("x", False)
    assert matcher.feed("ll") == ("<|ell", False)


def test_flush_releases_the_held_back_text() -> None:
    matcher = StopMatcher(["STOP"])
    assert matcher.feed("abST") == ("ab", False)
    assert matcher.flush("") == "ST"
    assert matcher.flush("") == ""


def test_flush_still_cuts_at_a_stop_completed_by_the_last_piece() -> None:
    matcher = StopMatcher(["STOP"])
    matcher.feed("abST")
    assert matcher.flush("OPxy") == ""


def test_earliest_of_several_stops_wins() -> None:
    assert StopMatcher(["zz", "b"]).feed("abczz") == ("a", True)


def test_overlapping_prefix_keeps_only_what_can_still_match() -> None:
    matcher = StopMatcher(["abc"])
    assert matcher.feed("aa") == ("a", False)
    assert matcher.feed("bc") == ("", True)


# --- prepare: templating and the context check ----------------------------------------------------------


def test_chat_prompt_is_templated_with_bos_and_template_stop() -> None:
    llama = FakeLlama()
    prepared = make_engine(llama).prepare(chat_job("Hi", stop=["###", ""]))
    expected = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert prepared.tokens == llama.tokenize(expected.encode())
    assert prepared.tokens[0] == BOS
    assert prepared.stops == ["###", "<|im_end|>"]


def test_completion_prompt_is_tokenized_as_is() -> None:
    prepared = make_engine().prepare(completion_job("Once", max_tokens=5))
    assert prepared.tokens == [BOS, *(b + OFFSET for b in b"Once")]
    assert prepared.stops == []
    assert prepared.max_tokens == 5


def test_without_max_tokens_the_rest_of_the_context_is_the_limit() -> None:
    prepared = make_engine(FakeLlama(n_ctx=100)).prepare(completion_job("Once"))
    assert prepared.max_tokens == 100 - 5


def test_prompt_plus_max_tokens_filling_the_context_exactly_is_accepted() -> None:
    prepared = make_engine(FakeLlama(n_ctx=100)).prepare(completion_job("Once", max_tokens=95))
    assert prepared.max_tokens == 95


def test_prompt_plus_max_tokens_over_the_context_is_refused() -> None:
    with pytest.raises(ContextLengthExceeded) as caught:
        make_engine(FakeLlama(n_ctx=100)).prepare(completion_job("Once", max_tokens=96))
    error = caught.value.to_dict()["error"]
    assert caught.value.status == 400
    assert error["code"] == "context_length_exceeded"
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "prompt"
    assert "101 tokens" in error["message"]


def test_chat_prompt_alone_over_the_context_is_refused_on_messages() -> None:
    with pytest.raises(ContextLengthExceeded) as caught:
        make_engine(FakeLlama(n_ctx=64)).prepare(chat_job("x" * 64))
    assert caught.value.param == "messages"


def test_prompt_exactly_the_context_leaves_no_room_and_is_refused() -> None:
    with pytest.raises(ContextLengthExceeded):
        make_engine(FakeLlama(n_ctx=5)).prepare(completion_job("Once"))


@pytest.mark.parametrize(
    ("response_format", "grammar"),
    [
        (None, None),
        ({"type": "text"}, None),
        ({"type": "json_object"}, ("json_object",)),
        (
            {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}},
            ("json_schema", '{"type": "object"}'),
        ),
    ],
)
def test_response_format_becomes_a_grammar(response_format: dict | None, grammar: object) -> None:
    prepared = make_engine().prepare(chat_job(response_format=response_format))
    assert prepared.grammar == grammar


def test_schema_that_cannot_become_a_grammar_is_a_400_on_response_format() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "invalid"}}}
    with pytest.raises(InvalidRequest) as caught:
        make_engine().prepare(chat_job(response_format=fmt))
    assert caught.value.param == "response_format"


# --- generate: tokens, finish reasons, sampling ----------------------------------------------------------


def test_end_of_generation_finishes_with_stop() -> None:
    pieces, progress = _complete("Hello there.")
    assert "".join(pieces) == "Hello there."
    assert progress.finish_reason == "stop"
    assert progress.completion_tokens == len(b"Hello there.")
    assert progress.text == pieces


def test_max_tokens_finishes_with_length() -> None:
    pieces, progress = _complete("Hello there.", max_tokens=4)
    assert "".join(pieces) == "Hell"
    assert progress.finish_reason == "length"
    assert progress.completion_tokens == 4


def test_a_model_that_never_stops_runs_to_the_end_of_the_context() -> None:
    engine = make_engine(FakeLlama("ab", n_ctx=20, eog=False))
    job = completion_job("Once")
    pieces, progress = _run(engine, engine.prepare(job), job.params)
    assert progress.completion_tokens == 20 - 5
    assert "".join(pieces) == "abababababababa"
    assert progress.finish_reason == "length"


def test_max_tokens_zero_generates_nothing() -> None:
    llama = FakeLlama("Hello")
    engine = make_engine(llama)
    job = completion_job("Once", max_tokens=0)
    pieces, progress = _run(engine, engine.prepare(job), job.params)
    assert pieces == []
    assert progress.completion_tokens == 0
    assert llama.calls == []


def test_stop_string_cuts_the_text_and_finishes_with_stop() -> None:
    pieces, progress = _complete("one, two. three", stop=[". "])
    assert "".join(pieces) == "one, two"
    assert progress.finish_reason == "stop"


def test_chat_template_end_marker_stops_the_reply() -> None:
    engine = make_engine(FakeLlama("Sure.<|im_end|>ignored"))
    job = chat_job()
    pieces, progress = _run(engine, engine.prepare(job), job.params)
    assert "".join(pieces) == "Sure."
    assert progress.finish_reason == "stop"


def test_text_held_back_for_a_stop_is_released_at_the_length_limit() -> None:
    pieces, progress = _complete("abST", stop=["STOP"], max_tokens=4)
    assert "".join(pieces) == "abST"
    assert progress.finish_reason == "length"


def test_text_held_back_for_a_stop_is_released_at_end_of_generation() -> None:
    pieces, progress = _complete("abST", stop=["STOP"])
    assert "".join(pieces) == "abST"
    assert progress.finish_reason == "stop"


def test_multibyte_characters_split_across_tokens_arrive_whole() -> None:
    reply = "héllo ☃ 🦙"
    pieces, progress = _complete(reply)
    assert "".join(pieces) == reply
    assert all("\ufffd" not in piece for piece in pieces)
    assert progress.completion_tokens == len(reply.encode())


def test_sampling_parameters_and_seed_reach_llama() -> None:
    llama = FakeLlama()
    engine = make_engine(llama)
    job = chat_job(
        temperature=0.3, top_p=0.9, seed=-1, presence_penalty=0.5, frequency_penalty=-0.5,
        response_format={"type": "json_object"},
    )  # fmt: skip
    prepared = engine.prepare(job)
    _run(engine, prepared, job.params)
    call = llama.calls[0]
    assert call["seed"] == -1  # the slot engine folds it to 32 bits for llama.cpp's sampler
    assert call["tokens"] == prepared.tokens
    assert (call["temp"], call["top_p"]) == (0.3, 0.9)
    assert (call["presence_penalty"], call["frequency_penalty"]) == (0.5, -0.5)
    assert call["grammar"] == ("json_object",)


def test_same_seed_gives_the_same_seed_to_llama() -> None:
    llama = FakeLlama()
    engine = make_engine(llama)
    for _ in range(2):
        job = completion_job(seed=7)
        _run(engine, engine.prepare(job), job.params)
    assert [call["seed"] for call in llama.calls] == [7, 7]

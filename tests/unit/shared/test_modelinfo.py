"""What a model's workers publish (`kind`, size, own queue limits) as the API reads it."""

from shared import modelinfo, names
from tests.fakes import make_settings


def test_a_hash_without_kind_is_a_chat_model_and_limits_fall_back_to_the_api() -> None:
    info = modelinfo.parse([None, b"2048", b"8", None, None, None, None])
    assert (info.kind, info.capabilities, info.n_ctx, info.max_token_bytes) == (
        "chat",
        ["chat", "completions"],
        2048,
        8,
    )
    settings = make_settings(max_queue_depth=7, max_batch_queue_depth=70)
    assert info.lane_limit(names.INTERACTIVE, settings) == 7
    assert info.lane_limit(names.BATCH, settings) == 70


def test_published_kind_and_limits_win() -> None:
    info = modelinfo.parse([b"embedding", None, b"garbled", b"3", b"30", b"384", b"30522"])
    assert (info.kind, info.capabilities, info.n_ctx, info.max_token_bytes) == ("embedding", ["embeddings"], None, None)
    settings = make_settings(max_queue_depth=7, max_batch_queue_depth=70)
    assert (info.lane_limit(names.INTERACTIVE, settings), info.lane_limit(names.BATCH, settings)) == (3, 30)
    assert (info.dimensions, info.n_vocab) == (384, 30522)


def test_a_worker_publishes_only_the_limits_its_environment_sets() -> None:
    assert modelinfo.published_limits(make_settings()) == ({}, ["max_queue_depth", "max_batch_queue_depth"])
    chosen = modelinfo.published_limits(make_settings(max_queue_depth=64))
    assert chosen == ({"max_queue_depth": 64}, ["max_batch_queue_depth"])

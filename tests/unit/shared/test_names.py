"""Every Redis name is pinned: changing one strands data written by running workers and APIs."""

import inspect

import pytest

from shared import names

JOB = "job_0123456789abcdef0123456789abcdef"
PINNED = {
    "queue_name": (("m", "interactive"), "llamaq:m:interactive"),
    "job_key": ((JOB,), f"llamaq:job:{JOB}"),
    "events_key": ((JOB,), f"llamaq:job:{JOB}:events"),
    "live_channel": ((JOB,), f"llamaq:job:{JOB}:live"),
    "cancel_key": ((JOB,), f"llamaq:job:{JOB}:cancel"),
    "heartbeat_key": ((JOB,), f"llamaq:job:{JOB}:heartbeat"),
    "model_workers_key": (("m",), "llamaq:model:m:workers"),
    "model_slots_key": (("m",), "llamaq:model:m:slots"),
    "models_key": ((), "llamaq:models"),
    "model_info_key": (("m",), "llamaq:model:m:info"),
    "worker_key": (("host.1.ab",), "llamaq:worker:host.1.ab"),
    "job_durations_key": (("m",), "llamaq:model:m:durations"),
    "metrics_key": ((), "llamaq:metrics"),
    "idempotency_key": (("owner", "key-1"), "llamaq:idem:owner:key-1"),
    "owner_index_key": (("owner", "jobs"), "llamaq:owner:owner:jobs"),
    "batch_key": (("batch_1",), "llamaq:batch:batch_1"),
    "batch_lines_key": (("batch_1", "output"), "llamaq:batch:batch_1:output"),
    "batches_active_key": ((), "llamaq:batches:active"),
    "file_key": (("file-1",), "llamaq:file:file-1"),
    "response_key": (("resp_1",), "llamaq:response:resp_1"),
    "file_lines_key": (("file-1",), "llamaq:file:file-1:lines"),
    "reaper_lock_key": ((), "llamaq:reaper:lock"),
    "webhooks_enabled_key": ((), "llamaq:webhooks:enabled"),
    "webhook_outbox_key": ((), "llamaq:webhooks:outbox"),
    "webhook_schedule_key": ((), "llamaq:webhooks:schedule"),
    "webhook_delivery_key": (("evt_1.0",), "llamaq:webhooks:delivery:evt_1.0"),
    "webhook_dead_key": ((), "llamaq:webhooks:dead"),
    "webhook_stats_key": ((), "llamaq:webhooks:stats"),
}


@pytest.mark.parametrize(("function", "args", "expected"), [(f, *case) for f, case in PINNED.items()])
def test_name_is_pinned(function: str, args: tuple[str, ...], expected: str) -> None:
    assert getattr(names, function)(*args) == expected


def test_every_name_function_is_pinned() -> None:
    functions = {name for name, value in vars(names).items() if inspect.isfunction(value)}
    assert functions == set(PINNED)


def test_constants() -> None:
    assert names.PREFIX == "llamaq"
    assert names.LANES == ("interactive", "batch")


def test_model_ids_with_slashes_and_colons_stay_inside_their_own_names() -> None:
    assert names.queue_name("org/model:q4", "batch") == "llamaq:org/model:q4:batch"
    assert names.model_workers_key("org/model:q4") == "llamaq:model:org/model:q4:workers"


def test_batch_key_prefix_used_by_the_emit_script() -> None:
    # EMIT builds `<prefix><batch id>` from batch_key(""); it must agree with batch_key(id).
    assert names.batch_key("") + "batch_1" == names.batch_key("batch_1")

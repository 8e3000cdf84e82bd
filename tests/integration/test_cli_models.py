"""`llamaq up` with several models: LLAMAQ_MODELS or repeated --model, each model on workers of its own."""

import subprocess

import openai
import psutil
import pytest

from tests.integration.test_cli import LLAMAQ, Output, end_up, fresh_machine_env
from tests.stack import free_port, gemma_gguf

pytestmark = pytest.mark.integration


def test_up_serves_every_model_of_llamaq_models(tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("home")
    specs = f"smol=bundled,slots=2;gemma={gemma_gguf()},slots=1,max_queue_depth=3"
    env = fresh_machine_env(home, free_port()) | {"LLAMAQ_MODELS": specs}
    up = subprocess.Popen(
        [str(LLAMAQ), "up"], env=env, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output = Output(up)
    children: list[psutil.Process] = []
    try:
        base_url = output.wait_for(r"serving smol, gemma at (http://\S+/v1)", timeout=180)[1]
        children = psutil.Process(up.pid).children(recursive=True)
        workers = [child for child in children if "shared.cli worker" in " ".join(child.cmdline())]
        # One worker a model (workers=N in a spec for more), each with its own model's settings only.
        assert sorted(worker.environ()["LLAMAQ_MODEL_NAME"] for worker in workers) == ["gemma", "smol"]
        assert len(children) == 4, [child.cmdline() for child in children]  # two workers, the API, Redis
        with openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=60) as client:
            listed = {model.id: model.model_dump() for model in client.models.list()}
            assert {name: (entry["slots"], entry["max_queue_depth"]) for name, entry in listed.items()} == {
                "smol": (2, 64),
                "gemma": (1, 3),
            }
            for model in ("smol", "gemma"):
                reply = client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=4
                )
                assert reply.model == model and reply.usage is not None and reply.usage.completion_tokens > 0
        up.terminate()
        assert up.wait(60) == 0
        assert [child.pid for child in children if child.is_running()] == [], "a child outlived `llamaq up`"
    finally:
        end_up(up, children, output)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--model", "smol=bundled", "--model", "smol=bundled,slots=2"], "llamaq: model 'smol' is given twice"),
        (["--model", "smol=bundled,colour=blue"], "'colour=blue' is not OPTION=VALUE"),
        (["--model", "smol=bundled", "--workers", "2"], "--workers is for one model"),
    ],
)
def test_up_refuses_a_bad_model_spec_before_starting(
    tmp_path_factory: pytest.TempPathFactory, args: list[str], says: str
) -> None:
    home = tmp_path_factory.mktemp("home")
    env = fresh_machine_env(home, free_port())
    done = subprocess.run([str(LLAMAQ), "up", *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and says in done.stderr, done.stderr
    assert not (home / "state" / "llamaq").exists(), "nothing was started"


def test_up_serves_a_chat_model_beside_an_embedding_model(tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("home")
    env = fresh_machine_env(home, free_port())
    args = ["--model", "smol=bundled", "--model", "minilm=bundled,embedding=true"]
    up = subprocess.Popen(
        [str(LLAMAQ), "up", *args], env=env, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output = Output(up)
    children: list[psutil.Process] = []
    try:
        base_url = output.wait_for(r"serving smol, minilm at (http://\S+/v1)", timeout=180)[1]
        children = psutil.Process(up.pid).children(recursive=True)
        with openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=60) as client:
            listed = {model.id: model.model_dump() for model in client.models.list()}
            assert {name: entry["capabilities"] for name, entry in listed.items()} == {
                "smol": ["chat", "completions"],
                "minilm": ["embeddings"],
            }
            vectors = client.embeddings.create(model="minilm", input=["a queue", "a line of people"])
            assert [len(item.embedding) for item in vectors.data] == [384, 384]
            reply = client.chat.completions.create(
                model="smol", messages=[{"role": "user", "content": "hi"}], max_tokens=4
            )
            assert reply.model == "smol"
            with pytest.raises(openai.BadRequestError) as wrong:
                client.chat.completions.create(model="minilm", messages=[{"role": "user", "content": "hi"}])
            assert wrong.value.code == "model_not_supported" and wrong.value.param == "model"
            with pytest.raises(openai.BadRequestError):
                client.embeddings.create(model="smol", input="hi")
        up.terminate()
        assert up.wait(60) == 0
    finally:
        end_up(up, children, output)

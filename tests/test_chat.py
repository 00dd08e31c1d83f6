"""Issue #17 (Part 14a): `ruvon chat` as a user runs it — a real process in a pseudo-terminal (pexpect) against a real
`ruvon serve` of the 2-layer stand-in on the CPU: answers stream, slash commands work, a server's refusal is one line and
the chat goes on, Ctrl-C stops an answer (the server drops the request) and a second Ctrl-C exits. Then `ruvon generate`'s
sampling flags."""
import json
import os
import signal
import re
import subprocess
import sys
import time

import httpx
import pexpect
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port

RUVON = os.path.join(os.path.dirname(sys.executable), "ruvon")
FOOTER = re.compile(r"TTFT [\d,]+ ms[^\r\n]*\d+ tokens")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(scope="module")
def server(standin_2l, ruvon_server):
    "(process, url) of `ruvon serve` on the 2-layer stand-in, served as `standin`."
    return ruvon_server(standin_2l)


SPAWNED: list[pexpect.spawn] = []


@pytest.fixture(autouse=True)
def no_chat_left_running():
    "A failed test must not leave its `ruvon chat` behind."
    yield
    while SPAWNED:
        child = SPAWNED.pop()
        if child.isalive(): child.close(force=True)


def chat(*args: str, timeout: float = 60) -> pexpect.spawn:
    "`ruvon chat ARGS` in a 40x120 pseudo-terminal, with SIGINT ignored on entry (as a background job's children have it): ruvon chat must restore it."
    child = pexpect.spawn(RUVON, ["chat", *args], encoding="utf-8", timeout=timeout, dimensions=(40, 120),
                          env={**os.environ, "TERM": "xterm", "COLUMNS": "120", "LINES": "40"},
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    SPAWNED.append(child)
    return child


def running(url: str) -> float:
    "The server's ruvon:num_requests_running gauge."
    fam = next(f for f in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text) if f.name == "ruvon:num_requests_running")
    return sum(s.value for s in fam.samples)


def reads_until_prompt(child: pexpect.spawn, timeout: float = 60) -> list[str]:
    "Every read from the terminal until an answer's footer and the next prompt have arrived."
    reads, deadline = [], time.time() + timeout
    while not re.search(FOOTER.pattern + r".*\n> ", ANSI.sub("", "".join(reads)), re.S):
        assert time.time() < deadline, f"no footer and prompt; got {''.join(reads)!r}"
        try: reads.append(child.read_nonblocking(4096, timeout=1))
        except pexpect.TIMEOUT: pass
    return reads


def prompt(child: pexpect.spawn) -> None:
    child.expect_exact("> ")


def test_a_two_turn_conversation_streams(server, tmp_path):
    _, url = server
    child = chat(url, "--model", "standin", "--temperature", "0.8", "--seed", "1", "--max-tokens", "64",
                 "--system", "A conversation between a user and an assistant.")
    child.expect(r"ruvon chat: .* standin · chat mode"); prompt(child)
    for question in ("What is a database index?", "Why is it fast?"):
        child.sendline(question)
        reads = reads_until_prompt(child)
        before_footer = reads[:next(i for i, r in enumerate(reads) if FOOTER.search(ANSI.sub("", "".join(reads[:i + 1]))))]
        text_reads = [r for r in before_footer if re.search(r"streaming… \d+ chunks", r)]
        assert len(text_reads) >= 3, f"the answer came in {len(text_reads)} reads: {reads!r}"  # streamed, not all at once
    child.sendline(f"/save {tmp_path / 'chat.json'}")
    child.expect("saved 5 messages")  # the system prompt and two exchanges; prompt(child)
    saved = json.loads((tmp_path / "chat.json").read_text())
    assert [m["role"] for m in saved["messages"]] == ["system", "user", "assistant", "user", "assistant"]
    assert saved["messages"][3]["content"] == "Why is it fast?" and saved["params"]["seed"] == 1
    child.sendeof()
    child.expect(pexpect.EOF); child.close()
    assert child.exitstatus == 0


def test_commands_and_an_unknown_model_leave_the_chat_going(server):
    _, url = server
    child = chat(url, "--max-tokens", "8")
    prompt(child)
    child.sendline("/temp 0.3"); child.expect_exact("temperature 0.3"); prompt(child)
    child.sendline("/temp warm"); child.expect_exact("error: /temp takes a number, got 'warm'"); prompt(child)
    child.sendline("/model poetry"); child.expect_exact("model poetry"); prompt(child)
    child.sendline("Hello")
    child.expect(r"error: 404 model not found: The model `poetry` does not exist\. This server serves `standin`\.[^\r\n]*\r\n")
    prompt(child)
    child.sendline("/model standin"); prompt(child)
    child.sendline("Hello"); child.expect(FOOTER); prompt(child)
    child.sendline("/quit"); child.expect(pexpect.EOF); child.close()
    assert child.exitstatus == 0 and "Traceback" not in child.before


def test_ctrl_c_stops_the_answer_and_the_server_drops_it(server):
    proc, url = server
    child = chat(url, "--model", "standin", "--completion", "--max-tokens", "900", "--temperature", "1", "--seed", "0")
    prompt(child)
    child.sendline("ROMEO:")
    child.expect(r"streaming… \d+ chunks")           # text is arriving
    deadline = time.time() + 10
    while running(url) < 1:
        assert time.time() < deadline, "the request never ran"
        time.sleep(0.02)
    child.sendintr()                                 # Ctrl-C
    child.expect_exact("[stopped]"); prompt(child)
    deadline = time.time() + 10
    while running(url) > 0:
        assert time.time() < deadline, "the server kept generating for a closed stream"
        time.sleep(0.05)
    logged = [json.loads(l) for l in proc.log.read_text().splitlines() if l.startswith("{")]
    assert logged[-1]["finish_reason"] == "abort" and logged[-1]["completion_tokens"] < 900
    child.sendline("/temp 0"); child.expect_exact("temperature 0"); prompt(child)  # the chat goes on
    child.sendintr()                                 # a second Ctrl-C, at the prompt: exit
    child.expect(pexpect.EOF); child.close()
    assert child.exitstatus == 0 and "Traceback" not in child.before


def test_a_server_that_is_not_there_is_one_line():
    dead = f"http://127.0.0.1:{free_port()}"
    child = chat(dead)
    child.expect(rf"error: cannot connect to {re.escape(dead)}: [^\r\n]*\(is the server running\?\)(\x1b\[0m)?\r\n")
    prompt(child)
    child.sendline("Hello?")
    child.expect(rf"error: cannot connect to {re.escape(dead)}"); prompt(child)
    child.sendeof(); child.expect(pexpect.EOF); child.close()
    assert child.exitstatus == 0 and "Traceback" not in child.before


def test_piped_chat_writes_answers_to_stdout_and_footers_to_stderr(server):
    _, url = server
    r = subprocess.run([RUVON, "chat", url, "--max-tokens", "8", "--temperature", "0"], input="Hello\n/model nope\nHello\n",
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 2 and FOOTER.search(lines[0]) and lines[1].startswith("error: 404 model not found"), r.stderr
    assert "\x1b[" not in r.stdout and r.stdout.endswith("model nope\n"), r.stdout


def generate(*args) -> subprocess.CompletedProcess:
    return subprocess.run([RUVON, "generate", *map(str, args)], capture_output=True, text=True, timeout=300)


def test_generate_sampling_flags(standin_2l):
    sampled = (standin_2l, "ROMEO:\n", "--max-tokens", 16, "--temperature", 0.9, "--top-k", 50, "--min-p", 0.01,
               "--repetition-penalty", 1.1, "--seed", 7, "-n", 2)
    first, again = generate(*sampled), generate(*sampled)
    assert first.returncode == 0, first.stderr
    assert first.stdout == again.stdout                               # seeded: reproducible
    choices = re.split(r"--- choice \d\n", first.stdout)[1:]
    assert len(choices) == 2 and choices[0] != choices[1]             # -n 2: two completions, two random streams


@pytest.mark.parametrize("args, says", [
    (("--top-p", "1.5"), "error: --top-p must be in (0, 1], got 1.5"),
    (("--temperature", "-0.5"), "error: --temperature must be >= 0, got -0.5"),
    (("--min-p", "2"), "error: --min-p must be in [0, 1], got 2.0"),
    (("-n", "0"), "error: -n must be at least 1, got 0"),
])
def test_generate_bad_sampling_values_are_one_line(standin_2l, args, says):
    r = generate(standin_2l, "hi", *args)
    assert (r.returncode, r.stderr) == (1, says + "\n")


def test_401_and_429_from_a_real_server_are_one_line_each(standin_2l, ruvon_server):
    "A server with --api-key and room for one request: no key is a 401 line; the key from OPENAI_API_KEY works; a full server's 429 says when to retry."
    _, url = ruvon_server(standin_2l, "--api-key", "k3y", "--max-num-seqs", "1", "--max-queue", "0")
    def piped_chat(env: dict) -> subprocess.CompletedProcess:
        return subprocess.run([RUVON, "chat", url, "--model", "standin", "--max-tokens", "4"], input="Hello\n", capture_output=True, text=True,
                              timeout=120, env={k: v for k, v in {**os.environ, **env}.items() if v is not None})
    r = piped_chat({"OPENAI_API_KEY": None})
    assert (r.returncode, r.stderr) == (0, "error: 401 unauthorized: Incorrect or missing API key: send it as Authorization: Bearer <key> "
                                           "(give --api-key KEY or set OPENAI_API_KEY)\n")
    assert FOOTER.search(piped_chat({"OPENAI_API_KEY": "k3y"}).stderr)
    body = {"model": "standin", "prompt": "Busy:", "max_tokens": 1000, "ignore_eos": True, "stream": True}
    with httpx.stream("POST", f"{url}/v1/completions", json=body, headers={"Authorization": "Bearer k3y"}, timeout=60) as busy:
        lines = busy.iter_lines()  # kept: a dropped iterator would close the stream, and the server would drop the request
        assert busy.status_code == 200 and next(lines).startswith("data: ")  # the one place is taken
        r = piped_chat({"OPENAI_API_KEY": "k3y"})
    assert r.returncode == 0 and re.fullmatch(r"error: 429 too many requests: [^\n]+retry after \d+ s\n", r.stderr), r.stderr

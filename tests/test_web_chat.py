"""Part 14b's chat page on a real `ruvon serve` (the 2-layer stand-in, CPU), in headless Chromium (Debian's `chromium`, driven by
Playwright's Python API): tokens appear progressively, Stop cancels on the server, a 429 and a 401 are shown inline, the model
picker lists what /v1/models serves. Screenshots land in test-artifacts/."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from prometheus_client.parser import text_string_to_metric_families

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
ADAPTERS = Path(__file__).resolve().parents[1] / "adapters"
LONG = {"max_tokens": 900, "ignore_eos": True}  # an answer that runs for seconds, so there is time to watch and to stop it


@pytest.fixture(scope="module")
def server(standin_2l, ruvon_server):
    return ruvon_server(standin_2l)[1]


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1000, "height": 700})
    yield ctx.new_page()
    ctx.close()


def open_chat(page: Page, url: str, body: dict | None = None) -> None:
    "Open the page in completion mode; `body` is merged into each completion request the page sends (the real server answers)."
    if body:
        page.route("**/v1/completions", lambda route: route.continue_(post_data=json.dumps(json.loads(route.request.post_data) | body)))
    page.goto(url + "/")
    page.get_by_label("completion").check()
    expect(page.get_by_label("model")).not_to_be_disabled()


def send(page: Page, prompt: str) -> None:
    page.get_by_label("prompt", exact=True).fill(prompt)
    page.get_by_label("prompt", exact=True).press("Enter")


def running(url: str) -> float:
    fams = {f.name: f for f in text_string_to_metric_families(httpx.get(f"{url}/metrics").text)}
    return sum(s.value for s in fams["ruvon:num_requests_running"].samples)


def test_page_and_api_served_together(server):
    page = httpx.get(server + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html") and '<div id="root">' in page.text
    js, css = httpx.get(server + "/assets/app.js"), httpx.get(server + "/assets/index.css")
    assert (js.status_code, js.headers["content-type"].split(";")[0]) == (200, "text/javascript")
    assert (css.status_code, css.headers["content-type"].split(";")[0]) == (200, "text/css")
    assert [m["id"] for m in httpx.get(server + "/v1/models").json()["data"]] == ["standin"]
    assert httpx.get(server + "/health").status_code == 200 and httpx.get(server + "/nowhere").headers["content-type"] == "application/json"


# Counts DOM mutations inside the answer being written, and its text length at each, until it stops streaming.
OBSERVE = """() => {
  window.__seen = [];
  new MutationObserver(() => {
    const a = document.querySelector('article.assistant[data-streaming] .content');
    if (a) window.__seen.push(a.textContent.length);
  }).observe(document.querySelector('.messages'), {subtree: true, childList: true, characterData: true});
}"""


def test_tokens_appear_progressively(server, page):
    open_chat(page, server, {"max_tokens": 60, "ignore_eos": True})
    page.get_by_label("prompt", exact=True).fill("ROMEO:")
    page.get_by_label("prompt", exact=True).press("Shift+Enter")  # a new line, not a send
    assert page.get_by_label("prompt", exact=True).input_value() == "ROMEO:\n" and page.locator("article.assistant").count() == 0
    page.evaluate(OBSERVE)
    page.get_by_label("prompt", exact=True).press("Enter")
    page.wait_for_selector("article.assistant:not([data-streaming])", timeout=60_000)
    seen = page.evaluate("window.__seen")
    growth = sorted(set(n for n in seen if n > 0))
    assert len(growth) >= 5, f"the answer grew in only {len(growth)} steps before the stream ended: {seen[:50]}"
    stats = page.locator("article.assistant .stats").inner_text()
    assert "TTFT" in stats and "tok/s" in stats and "60 tokens" in stats, stats
    assert page.evaluate("performance.getEntriesByName('ruvon:ttft').length") == 1
    page.screenshot(path=str(ARTIFACTS / "web_chat.png"))


def test_stop_cancels_on_the_server(server, page):
    open_chat(page, server, LONG)
    for stop in (lambda: page.get_by_role("button", name="Stop").click(), lambda: page.keyboard.press("Escape")):
        send(page, "First Citizen:")
        page.wait_for_function("document.querySelector('article.assistant[data-streaming] .content')?.textContent.length > 20")
        assert running(server) == 1
        stop()
        expect(page.locator("article.assistant").last.locator(".stopped")).to_be_visible()
        deadline = time.time() + 10
        while running(server) != 0 and time.time() < deadline: time.sleep(0.1)
        assert running(server) == 0, "the server kept generating after Stop"
        text = page.locator("article.assistant .content").last.inner_text()
        time.sleep(0.5)
        assert page.locator("article.assistant .content").last.inner_text() == text and "900 tokens" not in page.locator("article.assistant .stats").last.inner_text()
    expect(page.get_by_role("button", name="Send")).to_be_visible()


def test_busy_server_429_shown_inline(standin_2l, ruvon_server, page):
    _, url = ruvon_server(standin_2l, "--max-num-seqs", "1", "--max-queue", "0")
    held = threading.Event()
    def hold():  # one long stream occupies the only place in the batch
        with httpx.stream("POST", f"{url}/v1/completions", json={"model": "standin", "prompt": "ROMEO:", "stream": True, **LONG}, timeout=60) as r:
            lines = r.iter_lines(); next(lines)  # kept: a dropped iterator would close the stream
            held.set(); release.wait(30)
    release = threading.Event()
    t = threading.Thread(target=hold); t.start()
    try:
        assert held.wait(30)
        open_chat(page, url)
        send(page, "JULIET:")
        error = page.locator("article.error")
        expect(error).to_contain_text("429")
        expect(error).to_contain_text("busy")
        assert page.locator("article.assistant").count() == 0  # refused before a token: the error takes the answer's place
        page.screenshot(path=str(ARTIFACTS / "web_chat_429.png"))
    finally:
        release.set(); t.join()


def test_model_picker_lists_the_served_names(standin_6l, ruvon_server, page):
    "A server with two LoRA adapters (Part 18) serves three names; the page lists them and asks the one picked."
    _, url = ruvon_server(standin_6l, "--kv-cache-memory", str(32 << 20), "--dtype", "float32", "--enable-lora", "--max-loras", "2",
                          "--lora-modules", f"business={ADAPTERS / 'business'}", f"poetry={ADAPTERS / 'poetry'}")
    served = [m["id"] for m in httpx.get(url + "/v1/models").json()["data"]]
    assert served == ["standin", "business", "poetry"]
    open_chat(page, url)
    page.get_by_label("Max tokens").fill("8")
    expect(page.get_by_label("model").locator("option")).to_have_text(served)
    for name in ("poetry", "business"):
        page.get_by_label("model").select_option(name)
        with page.expect_request("**/v1/completions") as req: send(page, "ROMEO:")
        assert req.value.post_data_json["model"] == name
        page.wait_for_selector("article.assistant:not([data-streaming])", timeout=60_000)
        assert page.locator("article.error").count() == 0 and "TTFT" in page.locator("article.assistant .stats").inner_text()


def test_api_key_asked_after_401(standin_2l, ruvon_server, page):
    _, url = ruvon_server(standin_2l, "--api-key", "sesame")
    page.goto(url + "/")
    key = page.get_by_label("API key")
    expect(key).to_be_visible()  # /v1/models answered 401
    send(page, "ROMEO:")
    expect(page.locator("article.error")).to_contain_text("401")
    key.fill("sesame"); key.blur()
    expect(page.get_by_label("model")).to_have_value("standin")
    page.get_by_label("completion").check()
    page.get_by_label("Max tokens").fill("16")
    send(page, "ROMEO:")
    page.wait_for_selector("article.assistant:not([data-streaming])", timeout=60_000)
    assert page.locator("article.error").count() == 0 and page.locator("article.assistant .stats").inner_text().startswith("TTFT")


def test_chat_mode_sends_the_conversation(server, page):
    page.goto(server + "/")
    expect(page.get_by_label("model")).to_have_value("standin")
    page.get_by_label("Max tokens").fill("8")
    page.get_by_label("system prompt").fill("You are terse.")
    send(page, "Hello")
    page.wait_for_selector("article.assistant:not([data-streaming])", timeout=60_000)
    first = page.locator("article.assistant .content").first.inner_text()
    with page.expect_request("**/v1/chat/completions") as req: send(page, "And then?")
    body = req.value.post_data_json
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["messages"][0]["content"] == "You are terse." and body["messages"][2]["content"].strip() == first.strip()
    assert (body["stream"], body["max_tokens"], body["temperature"], body["top_p"]) == (True, 8, 0.8, 0.95)
    page.wait_for_selector("article.assistant:not([data-streaming])", timeout=60_000)


def test_network_error_shown_inline(server, page):
    open_chat(page, server)
    page.route("**/v1/completions", lambda route: route.abort("connectionrefused"))
    send(page, "ROMEO:")
    expect(page.locator("article.error")).to_contain_text("Network error")


def test_theme_and_phone_width(server, browser):
    ctx = browser.new_context(viewport={"width": 375, "height": 700}, color_scheme="light")
    page = ctx.new_page()
    page.goto(server + "/")
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    page.get_by_label("toggle theme").click()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(15, 18, 22)", background
    page.get_by_text("Settings").click()  # folded at phone width
    page.get_by_label("Max tokens").fill("24")
    page.get_by_text("Settings").click()
    send(page, "ROMEO:")
    page.wait_for_selector("article.assistant:not([data-streaming])", timeout=60_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # nothing wider than the phone
    assert page.get_by_label("prompt", exact=True).is_visible() and page.get_by_label("model").is_visible()
    page.screenshot(path=str(ARTIFACTS / "web_chat_phone.png"))
    ctx.close()


EVENTS = 'data: {"choices":[{"text":"café "}]}\n\ndata: {"choices":[{"text":"🎭 done"}]}\n\ndata: [DONE]\n\n'.encode()
CUTS = [EVENTS.index("é".encode()) + 1, EVENTS.index("🎭".encode()) + 2]  # inside the é, inside the emoji (and inside events)


class SplitStream(BaseHTTPRequestHandler):
    "An SSE response written in three pieces, each cut inside a UTF-8 character and inside an event."
    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200); self.send_header("Content-Type", "text/event-stream"); self.end_headers()
        for a, b in zip([0, *CUTS], [*CUTS, len(EVENTS)]):
            self.wfile.write(EVENTS[a:b]); self.wfile.flush(); time.sleep(0.3)
    def log_message(self, *args): pass


def test_events_and_characters_split_across_chunks(server, page):
    "sse.ts keeps an unfinished event and an unfinished character for the next chunk (TextDecoder's stream mode)."
    split = ThreadingHTTPServer(("127.0.0.1", 0), SplitStream)
    threading.Thread(target=split.serve_forever, daemon=True).start()
    try:
        open_chat(page, server)
        page.route("**/v1/completions", lambda route: route.continue_(url=f"http://127.0.0.1:{split.server_port}/v1/completions"))
        page.evaluate(OBSERVE)
        send(page, "ROMEO:")
        page.wait_for_selector("article.assistant:not([data-streaming])")
        assert page.locator("article.assistant .content").inner_text() == "café 🎭 done"
        assert 5 in page.evaluate("window.__seen")  # "café " was shown alone first: the pieces arrived apart
    finally:
        split.shutdown()


def test_stream_cut_before_done_is_an_error(server, page):
    "A stream that ends without [DONE] keeps the text that came and says the answer was cut short."
    open_chat(page, server)
    page.route("**/v1/completions", lambda route: route.fulfill(status=200, content_type="text/event-stream",
                                                                 body='data: {"choices":[{"text":"half an"}]}\n\n'))
    send(page, "ROMEO:")
    expect(page.locator("article.error")).to_contain_text("cut short")
    assert page.locator("article.assistant .content").inner_text() == "half an"


def test_a_question_that_failed_is_not_sent_again(server, page):
    "After a 429 took the answer's place, the next chat request carries the new question alone, not the failed one too."
    page.goto(server + "/")
    expect(page.get_by_label("model")).to_have_value("standin")
    page.get_by_label("Max tokens").fill("8")
    busy = json.dumps({"error": {"message": "busy", "type": "rate_limit_exceeded", "param": None, "code": None}})
    page.route("**/v1/chat/completions", lambda route: route.fulfill(status=429, content_type="application/json", body=busy), times=1)
    send(page, "First try")
    expect(page.locator("article.error")).to_be_visible()
    with page.expect_request("**/v1/chat/completions") as req: send(page, "Second try")
    assert [(m["role"], m["content"]) for m in req.value.post_data_json["messages"]] == [("user", "Second try")]
    page.wait_for_selector("article.assistant:not([data-streaming])", timeout=60_000)

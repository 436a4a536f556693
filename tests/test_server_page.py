"""The chat page at / in a real headless browser (Debian's chromium + chromium-driver through
selenium; .ci/system-packages installs them): type a message, see the streamed answer appear
(equal to the server's own greedy answer), continue the conversation, upload an image."""
from __future__ import annotations

import base64
import shutil

import pytest

import llama4_native as l4
from server_harness import ServerThread

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(not (CHROMEDRIVER and CHROMIUM),
                                reason="needs Debian's chromium and chromium-driver (.ci/system-packages)")


@pytest.fixture(scope="module")
def server(real_vocab_checkpoint):
    with ServerThread(l4.load(real_vocab_checkpoint, dtype="bfloat16")) as s:
        yield s


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1200,900", "--no-first-run", "--disable-extensions"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _set(browser, element_id, value):
    el = browser.find_element(By.ID, element_id)
    el.clear()
    el.send_keys(str(value))


def _answers(browser):
    return browser.find_elements(By.CSS_SELECTOR, "#messages .msg.assistant")


def _wait_answer(browser, count, timeout=120):
    """The text of the count-th answer once its stream has ended (the meta line appears then)."""
    WebDriverWait(browser, timeout).until(
        lambda b: len(_answers(b)) >= count and _answers(b)[count - 1].find_elements(By.CSS_SELECTOR, ".meta"))
    return _answers(browser)[count - 1].find_element(By.CSS_SELECTOR, ".text").text


def _server_answer(server, messages, max_tokens):
    import httpx

    r = httpx.post(server.url + "/v1/chat/completions", timeout=120,
                   json={"model": "tiny", "messages": messages, "max_tokens": max_tokens, "temperature": 0})
    return r.json()["choices"][0]["message"]["content"]


def test_chat_page_streams_answers_keeps_history_and_takes_images(server, browser, tmp_path):
    from selenium.common.exceptions import WebDriverException

    browser.get(server.url + "/")
    WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "model-name").text == "tiny")
    browser.execute_script("localStorage.clear()")
    _set(browser, "temperature", 0)
    _set(browser, "max_tokens", 5)

    # 1. Type a message, press Enter: the streamed answer appears with tokens/s.
    box = browser.find_element(By.ID, "prompt")
    box.send_keys("Hello there")
    box.send_keys("\n")
    first = _wait_answer(browser, 1)
    assert first.strip() == _server_answer(server, [{"role": "user", "content": "Hello there"}], 5).strip()
    meta = _answers(browser)[0].find_element(By.CSS_SELECTOR, ".meta").text
    assert meta.startswith("5 tokens") and "tokens/s" in meta

    # 2. A second turn carries the history.
    box.send_keys("And then?")
    browser.find_element(By.ID, "send").click()
    second = _wait_answer(browser, 2)
    shown_first = browser.execute_script("return state.history[1].content")
    assert shown_first.strip() == first.strip()
    history = [{"role": "user", "content": "Hello there"}, {"role": "assistant", "content": shown_first},
               {"role": "user", "content": "And then?"}]
    assert second.strip() == _server_answer(server, history, 5).strip()

    # 3. Upload an image through the file input (what a drop does too) and ask about it.
    from PIL import Image

    path = tmp_path / "red.png"
    Image.new("RGB", (48, 32), (200, 30, 30)).save(path)
    browser.find_element(By.ID, "reset").click()
    browser.find_element(By.ID, "file-input").send_keys(str(path))
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#attachments img"))
    box.send_keys("What is this?")
    browser.find_element(By.ID, "send").click()
    third = _wait_answer(browser, 1)
    user = browser.find_element(By.CSS_SELECTOR, "#messages .msg.user")
    assert user.find_elements(By.TAG_NAME, "img")  # the image shows in the conversation
    url = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
    asked = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                          {"type": "text", "text": "What is this?"}]}]
    assert third.strip() == _server_answer(server, asked, 5).strip()
    assert third.strip() != _server_answer(server, [{"role": "user", "content": "What is this?"}], 5).strip()
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] if hasattr(browser, "get_log") else []
    assert not errors, errors
    try:
        browser.find_element(By.CSS_SELECTOR, "#messages .msg.error")
        pytest.fail("the page shows an error")
    except WebDriverException:
        pass

"""`mnist-edge serve`'s page in a real browser: Debian's headless Chromium through Selenium and
the system's chromedriver (no driver download). Skips with the reason where either is missing;
.ci/run installs them (apt-get install chromium chromium-driver)."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from mnist_edge.cli import main
from tests.serve_process import ServeProcess
from tests.synthetic import camera_frame, sample_numbers, write_video

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT_S = 60.0  # a liveness bound on a loaded machine, not a timing check
SIZES = {"desktop": (1280, 860), "phone": (390, 844)}

selenium = pytest.importorskip("selenium", reason="selenium not installed (pip install selenium)")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "no chromium or chromedriver here (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def chromium_options(user_data_dir: str) -> webdriver.ChromeOptions:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # Headless as root in a container, offline: no sandbox, GPU, shared memory or phoning home.
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--disable-default-apps", "--disable-extensions",
        f"--user-data-dir={user_data_dir}",
    ):  # fmt: skip
        options.add_argument(argument)
    return options


@pytest.fixture(scope="module")
def browser():
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=chromium_options(profile))
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture(scope="module")
def one_number(mnist, tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A video whose every frame shows the same 4-digit number (a camera on a still page)."""
    rng = np.random.default_rng(21)
    ((digits, _),) = sample_numbers(mnist.x_test, mnist.y_test, 1, rng, lengths=(4, 4))
    frame = camera_frame(digits, rng, jpeg_quality=90)
    folder = tmp_path_factory.mktemp("browser")
    return write_video(folder / "still.mp4", [frame] * 10, fps=10.0), frame


def cli_json(*args: str) -> list[dict]:
    done = CliRunner().invoke(main, list(args))
    assert done.exit_code == 0, done.output
    return [json.loads(line) for line in done.stdout.splitlines()]


def wait_until(browser, condition, what: str):
    return WebDriverWait(browser, WAIT_S).until(condition, message=f"page never {what}")


def positive_number(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:  # "–" until the second frame gives a rate
        return False


def chip_digits(browser, box: str) -> list[str]:
    """The digits of the chips in a box, read at one instant (the page redraws them live)."""
    script = f"return [...document.querySelectorAll('#{box} .chip')].map(c => c.dataset.digit)"
    return browser.execute_script(script)


def save_page(browser, size: str, path: Path) -> None:
    if size == "phone":  # the whole page, not only the first screen
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(SIZES[size][0], height + 20)
    time.sleep(0.3)  # let the newest stream frame paint
    assert browser.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
    browser.set_window_size(*SIZES[size])


def stream_width(browser) -> int:
    return browser.execute_script("return document.getElementById('stream').naturalWidth")


@pytest.mark.parametrize("size", list(SIZES))
def test_page_shows_stream_number_and_an_uploaded_photo(
    browser, one_number, int8_model, mnist, tmp_path, size
):
    video, _ = one_number
    shown = cli_json("live", "--source", str(video), "--headless", "--json", "--model",
                     str(int8_model), "--max-frames", "1")[0]  # fmt: skip
    assert len(shown["text"]) >= 3  # the page has a real number to show

    rng = np.random.default_rng(8)
    ((digits, _),) = sample_numbers(mnist.x_test, mnist.y_test, 1, rng, lengths=(3, 3))
    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), camera_frame(digits, rng, size=(720, 960)))
    expected = cli_json("predict", "--json", "--model", str(int8_model), str(photo))[0]
    assert expected["text"] and expected["text"] != shown["text"]

    browser.set_window_size(*SIZES[size])
    with ServeProcess(["--source", str(video), "--model", str(int8_model)]) as served:
        opened = time.perf_counter()
        browser.get(served.url)
        wait_until(browser, lambda b: stream_width(b) > 0, "loaded a stream frame")
        first_frame_s = time.perf_counter() - opened
        assert stream_width(browser) == 640
        number = browser.find_element(By.ID, "number")
        wait_until(browser, lambda b: number.text == shown["text"], f"showed {shown['text']}")
        assert chip_digits(browser, "digits") == [str(d["digit"]) for d in shown["digits"]]
        wait_until(browser, lambda b: b.find_element(By.ID, "model").text == "mnist_int8",
                   "showed the model's name")  # fmt: skip
        wait_until(
            browser,
            lambda b: positive_number(b.find_element(By.ID, "fps").text),
            "showed a frame rate",
        )

        browser.find_element(By.ID, "photo").send_keys(str(photo))
        upload = browser.find_element(By.ID, "upload-number")
        wait_until(browser, lambda b: upload.text == expected["text"], "showed the photo's digits")
        assert chip_digits(browser, "upload-digits") == [
            str(d["digit"]) for d in expected["digits"]
        ]
        assert browser.find_element(By.ID, "upload-status").text == "photo.jpg"
        screenshot = tmp_path / f"serve-{size}.png"
        save_page(browser, size, screenshot)

        # A file that is no image: the server's one-line reason, shown as an error.
        broken = tmp_path / "broken.png"
        broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
        browser.find_element(By.ID, "photo").send_keys(str(broken))
        status = browser.find_element(By.ID, "upload-status")
        wait_until(browser, lambda b: "error" in status.get_attribute("class"), "showed an error")
        assert status.text.startswith("broken.png: ") and "image" in status.text
        print(f"{size}: first frame {first_frame_s:.2f} s after opening; screenshot {screenshot}")
        # The page's requests were all answered (nothing blocked, nothing from elsewhere)
        # but the refused upload.
        errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
        assert all("api/predict" in e["message"] and "400" in e["message"] for e in errors), errors

"""A tiny W3C WebDriver client for headless Chromium (Debian's ``chromium`` + ``chromium-driver``).

Just what the browser tests need: open a page, find an element by CSS, click it, read the URL
and the page source. No third-party dependency: chromedriver speaks JSON over HTTP.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from typing import Any

import requests

from workers.embedded_redis import free_port

ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--window-size=1024,768",
]


def find_chromium() -> tuple[str, str] | None:
    """Paths of the browser and its driver, or None when either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


class Browser:
    def __init__(self, browser: str, driver: str) -> None:
        self.port = free_port()
        self.driver = subprocess.Popen(
            [driver, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(f"{self.base}/status", timeout=1).json()["value"]["ready"]:
                    break
            except (requests.RequestException, ValueError, KeyError):
                pass
            if time.monotonic() > deadline or self.driver.poll() is not None:
                self.driver.kill()
                raise RuntimeError("chromedriver did not start")
            time.sleep(0.1)
        capabilities = {"browserName": "chrome", "goog:chromeOptions": {"binary": browser, "args": CHROMIUM_ARGS}}
        session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})
        self.session = session["sessionId"]

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        response = requests.request(method, f"{self.base}{path}", json=payload, timeout=60)
        body = response.json()
        if response.status_code >= 400:
            raise RuntimeError(f"webdriver {method} {path}: {body}")
        return body.get("value", body) if path != "/session" else body["value"]

    def get(self, url: str) -> None:
        self._call("POST", f"/session/{self.session}/url", {"url": url})

    @property
    def url(self) -> str:
        return self._call("GET", f"/session/{self.session}/url")

    @property
    def source(self) -> str:
        return self._call("GET", f"/session/{self.session}/source")

    def click(self, css: str) -> None:
        element = self._call("POST", f"/session/{self.session}/element", {"using": "css selector", "value": css})
        self._call("POST", f"/session/{self.session}/element/{element[ELEMENT_KEY]}/click", {})

    def quit(self) -> None:
        try:
            self._call("DELETE", f"/session/{self.session}")
        finally:
            self.driver.terminate()
            try:
                self.driver.wait(10)
            except subprocess.TimeoutExpired:
                self.driver.kill()

#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the browser tests (Debian's chromium + chromium-driver).
# Never fails the build: where they cannot be installed, the browser tests skip and say why.
set -u
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-browser: not root or no apt-get; browser tests will be skipped" >&2
  exit 0
fi
echo "install-test-browser: installing chromium and chromium-driver"
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }; then
  echo "install-test-browser: apt-get failed; browser tests will be skipped" >&2
fi
exit 0

"""Headless Chromium for the browser tests, through python3-selenium and
Debian's chromium and chromium-driver: the one place that knows the flags.

Without the background-networking flags Chromium tries to reach Google's
hosts at every start, which this project's machines (no network) refuse."""
import shutil

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]


def find():
    """(chromium, chromedriver) paths, or None for a missing one."""
    return (shutil.which("chromium") or shutil.which("chromium-browser"),
            shutil.which("chromedriver"))


def start(profile_dir, width, height, extra=()):
    """A headless Chromium driven by selenium, with a fresh profile in
    profile_dir and a width x height window; extra: more flags."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    chromium, driver = find()
    opts = Options()
    opts.binary_location = chromium
    for arg in FLAGS + ["--window-size=%d,%d" % (width, height),
                        "--user-data-dir=" + profile_dir] + list(extra):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=opts)

#!/usr/bin/python3
"""The HTML report's task table sorts by a column in a real browser (headless
Chromium through Selenium): numbers by value with missing figures last,
a second click the other way, text by name.

usage: check_report_sort.py FILE.html (exit 77 when Chromium or Selenium is absent)"""
import os
import sys
import tempfile

try:
    from selenium.webdriver.common.by import By
except ImportError:
    print("SKIP: python3-selenium is absent")
    sys.exit(77)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import browser  # noqa: E402  (tests/browser.py)

if None in browser.find():
    print("SKIP: chromium or chromium-driver is absent")
    sys.exit(77)

d = browser.start(tempfile.mkdtemp(), 1280, 900)
d.get("file://" + sys.argv[1])
t = d.find_element(By.CSS_SELECTOR, "table.sortable")
hdr = t.find_elements(By.TAG_NAME, "th")
auc_col = [h.text for h in hdr].index("AUC")
hdr[auc_col].click()
vals = [r.find_elements(By.TAG_NAME, "td")[auc_col].text for r in t.find_elements(By.TAG_NAME, "tr")[1:]]
nums = [float(v) for v in vals if v != "-"]
assert nums == sorted(nums), vals
assert all(v == "-" for v in vals[len(nums):]), vals
hdr[auc_col].click()
vals2 = [r.find_elements(By.TAG_NAME, "td")[auc_col].text for r in t.find_elements(By.TAG_NAME, "tr")[1:]]
nums2 = [float(v) for v in vals2 if v != "-"]
assert nums2 == sorted(nums2, reverse=True), vals2
hdr[0].click()
names = [r.find_elements(By.TAG_NAME, "td")[0].text for r in t.find_elements(By.TAG_NAME, "tr")[1:]]
assert names == sorted(names), names
print("the task table sorts by value and by name in Chromium")
d.quit()

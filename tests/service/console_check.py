#!/usr/bin/env python3
"""Loads tether's web console in headless Chromium (selenium + chromedriver) and prints, as one
JSON object, the figures the page shows once it has polled /status.json a few times. Saves a
screenshot. Used by tests/service/console_test.cpp, which compares the figures with the
server's own counters.

usage: console_check.py URL SCREENSHOT.png
"""
import json
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def main():
    url, screenshot = sys.argv[1], sys.argv[2]
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1100,900", "--no-first-run", "--disable-extensions"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        driver.set_page_load_timeout(20)
        driver.get(url)
        # Three polls: rates and the sparkline need two, the third shows a steady page.
        WebDriverWait(driver, 20, poll_frequency=0.2).until(
            lambda d: int(d.find_element(By.ID, "poll").get_attribute("data-polls") or 0) >= 3)
        # One script reads the whole page: it runs between two of the page's own re-renders,
        # so rows replaced by the next poll cannot go stale half-way through the reading.
        seen = driver.execute_script("""
            const text = (id) => document.getElementById(id).textContent.trim();
            const methods = {};
            for (const row of document.querySelectorAll('#methods tbody tr')) {
              methods[row.dataset.handler + '/' + row.dataset.method] = {
                calls: parseInt(row.querySelector('.calls').textContent, 10),
                errors: parseInt(row.querySelector('.errors').textContent, 10),
              };
            }
            return {
              service: text('service'),
              state: text('state'),
              connections_open: parseInt(text('connections-open'), 10),
              requests: parseInt(text('requests-total'), 10),
              errors: parseInt(text('errors-total'), 10),
              rate: parseFloat(text('rate')),
              methods: methods,
              connection_rows: document.querySelectorAll('#connections tbody tr').length,
              error_rows: document.querySelectorAll('#errors tbody tr').length,
              loop_rows: document.querySelectorAll('#loops tbody tr').length,
              lag_samples: Array.from(document.querySelectorAll('#loops tbody tr'),
                                      (row) => parseInt(row.cells[3].textContent, 10)),
              registry: text('registry'),
            };""")
        seen.update({
            "console_errors": [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"],
        })
        driver.save_screenshot(screenshot)
        print(json.dumps(seen))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()

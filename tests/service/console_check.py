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
        text = lambda i: driver.find_element(By.ID, i).text
        methods = {}
        for row in driver.find_elements(By.CSS_SELECTOR, "#methods tbody tr"):
            key = row.get_attribute("data-handler") + "/" + row.get_attribute("data-method")
            methods[key] = {
                "calls": int(row.find_element(By.CSS_SELECTOR, ".calls").text),
                "errors": int(row.find_element(By.CSS_SELECTOR, ".errors").text),
            }
        seen = {
            "service": text("service"),
            "state": text("state"),
            "connections_open": int(text("connections-open")),
            "requests": int(text("requests-total")),
            "errors": int(text("errors-total")),
            "rate": float(text("rate")),
            "methods": methods,
            "connection_rows": len(driver.find_elements(By.CSS_SELECTOR, "#connections tbody tr")),
            "error_rows": len(driver.find_elements(By.CSS_SELECTOR, "#errors tbody tr")),
            "console_errors": [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"],
        }
        driver.save_screenshot(screenshot)
        print(json.dumps(seen))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()

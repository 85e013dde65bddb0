"""The dashboard's token handling and keyboard path in a real browser, against a plain `babelwatch
api` (no notifier: the page says where the live feed is): a wrong token is refused and asked for
again, never kept; the right one is kept for the tab only; forgetting it clears it."""
from __future__ import annotations

import pytest
from bw_api import READ_TOKEN, api_server
from bw_browser import chromium, console_errors
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.integration


def wait(driver, cond, timeout: float, what: str):
    # the page redraws its panels every 2 s: an element found a moment ago may be gone, try again
    return WebDriverWait(driver, timeout, poll_frequency=0.2,
                         ignored_exceptions=(StaleElementReferenceException,)).until(cond, message=what)


def test_token_refused_then_kept_then_forgotten(tmp_path):
    with api_server(tmp_path) as srv, chromium() as driver:
        driver.get(srv.base + "/")
        # keyboard: the skip link first, then the token field
        body = driver.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.TAB)
        assert driver.switch_to.active_element.get_attribute("class") == "skip"
        driver.switch_to.active_element.send_keys(Keys.TAB)
        assert driver.switch_to.active_element.get_attribute("id") == "token"

        driver.switch_to.active_element.send_keys("not-a-valid-token-at-all" + Keys.ENTER)
        wait(driver, lambda d: "Token refused (401)" in d.find_element(By.ID, "conn").text, 15, "refused")
        assert driver.find_element(By.ID, "token-form").is_displayed()
        assert driver.execute_script("return sessionStorage.getItem('babelwatch.token')") is None
        refused = console_errors(driver)
        assert refused and all("401" in e["message"] for e in refused)  # the browser's own report of the 401s

        driver.find_element(By.ID, "token").send_keys(READ_TOKEN + Keys.ENTER)
        wait(driver, lambda d: d.find_element(By.ID, "conn").text == "Connected.", 15, "connected")
        assert READ_TOKEN not in driver.current_url
        wait(driver, lambda d: "babelwatch notify" in d.find_element(By.ID, "feed-status").text, 15,
             "no live feed here, and where it is")
        wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "dd[data-stat='dead letters']").text
             .startswith("not read"), 10, "dead letters: not read by `babelwatch api`")
        driver.refresh()  # kept for the tab: no new prompt
        wait(driver, lambda d: d.find_element(By.ID, "conn").text == "Connected.", 15, "connected after reload")
        driver.find_element(By.ID, "forget").click()
        assert driver.execute_script("return sessionStorage.getItem('babelwatch.token')") is None
        assert driver.find_element(By.ID, "token-form").is_displayed()
        # only the expected 404 of the live feed (served by `babelwatch notify`), nothing else
        assert all("/v1/alerts/stream" in e["message"] and "404" in e["message"] for e in console_errors(driver))

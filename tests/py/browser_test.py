"""The dashboard in a real browser: Playwright driving the system's Chromium against a running
`wagate serve` and `wagate mock-bsp` (started by scripts/browser-test, which passes their
addresses in WAGATE_URL, WAGATE_ADMIN_TOKEN, MOCK_URL). Takes the README's screenshots."""

import json
import os
import re
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from playwright.sync_api import expect, sync_playwright

BASE = os.environ["WAGATE_URL"].rstrip("/")
ADMIN = os.environ["WAGATE_ADMIN_TOKEN"]
MOCK = os.environ["MOCK_URL"].rstrip("/")
SHOTS = os.environ.get("SCREENSHOTS", "docs/screenshots")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
NUMBER = "+919812345678"
HOSTILE = '<img src=x onerror=alert(1)> "Spring" sale'


def api(method, path, token, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class Receiver(BaseHTTPRequestHandler):
    """A customer's webhook receiver: refuses under /reject, accepts elsewhere."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(400 if self.path.startswith("/reject") else 200)
        self.end_headers()

    def log_message(self, *args):
        pass


def setup():
    stamp = str(int(time.time() * 1000))
    shop, rival = f"shop{stamp}", f"rival{stamp}"
    status, body = api("POST", "/v1/projects", ADMIN, {
        "id": shop, "name": "Shop",
        "phone_numbers": [{"number": NUMBER, "meta_phone_number_id": NUMBER.lstrip("+")}]})
    assert status == 201, body
    key = body["api_key"]
    status, body = api("PUT", "/v1/providers/meta", key, {"base_url": MOCK, "token": "mock-token"})
    assert status == 200, body
    status, body = api("POST", "/v1/projects", ADMIN, {
        "id": rival, "name": "Rival", "phone_numbers": ["+919800000002"]})
    assert status == 201, body
    rival_key = body["api_key"]
    status, body = api("POST", "/project/campaign", rival_key, {
        "name": "Rival secret plan", "template_id": "t", "provider": "datagen",
        "sender": "+919800000002"})
    assert status == 201, body
    return key, body["id"]


def shot(page, name):
    page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def main():
    os.makedirs(SHOTS, exist_ok=True)
    key, rival_campaign = setup()
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    rport = receiver.server_address[1]
    csv_path = os.path.join(tempfile.mkdtemp(), "recipients.csv")
    with open(csv_path, "w") as f:
        f.write("phone,name,code\n+919876500001,Asha,SPRING10\n+919876500002,Ravi,SPRING15\n"
                "+919876500003,,SPRING10\n919876500004,Meera,SPRING20\n"
                "+91 98765 00005,<script>alert(2)</script>,SPRING10\n"
                "not-a-phone,Nobody,X\n+919876500001,Asha again,SPRING10\n")

    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        ctx = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
        page = ctx.new_page()
        page.set_default_timeout(20_000)
        page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
        # Script errors and CSP violations fail the test; expected 401/404 answers do not.
        page.on("pageerror", lambda e: problems.append(f"script error: {e}"))
        page.on("console", lambda m: m.type == "error"
                and not m.text.startswith("Failed to load resource")
                and problems.append(f"console: {m.text}"))

        # Sign in.
        page.goto(BASE + "/")
        expect(page).to_have_url(re.compile(r"/ui/sign-in$"))
        shot(page, "sign-in")
        page.get_by_label("API key or admin token").fill("wrong")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("p.problem")).to_contain_text("not recognised")
        page.get_by_label("API key or admin token").fill(key)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(re.compile(r"/ui/campaigns$"))
        expect(page.locator(".empty")).to_contain_text("No campaigns yet")

        # Create a campaign, mapping parameters from the CSV's own columns, and upload it.
        page.get_by_role("link", name="New campaign").click()
        page.get_by_label("Name", exact=True).fill(HOSTILE)
        page.get_by_label("Template name").fill("spring_sale")
        page.get_by_label("Provider").select_option("meta")
        page.get_by_label("Sender").fill(NUMBER)
        page.get_by_label("Recipients").set_input_files(csv_path)
        first = page.locator("select[name=param_column]").first
        expect(first.locator("option")).to_have_count(4)  # the prompt + phone, name, code
        first.select_option("name")
        page.locator("input[name=param_fallback]").first.fill("there")
        page.get_by_role("button", name="Add a parameter").click()
        page.locator("select[name=param_column]").nth(1).select_option("code")
        page.get_by_role("button", name="Create campaign").click()
        report = page.locator(".report")
        expect(report).to_contain_text("5 recipients accepted")
        expect(report).to_contain_text("1 rows rejected")
        expect(report).to_contain_text("1 duplicate")
        expect(report.locator("td").first).to_have_text("6")
        expect(page.locator("progress")).to_have_attribute("value", "100")
        shot(page, "campaign-new")
        page.get_by_role("link", name="Open the campaign").click()
        expect(page.locator("h1")).to_have_text(HOSTILE)  # hostile data renders as text
        campaign_url = page.url

        # Start it against the mock BSP and watch it finish without a reload.
        page.get_by_role("button", name="Start sending").click()
        expect(page.locator("p.notice")).to_contain_text("Sending started")
        page.evaluate("window.__sameDocument = true")
        expect(page.locator("strong[data-field=state]")).to_have_text("finished", timeout=60_000)
        assert page.evaluate("window.__sameDocument === true"), "the page reloaded"
        counts = {s: int(page.locator(f"[data-count={s}]").first.inner_text())
                  for s in ["sent", "delivered", "read", "failed"]}
        assert sum(counts.values()) == 5, counts

        # Results download.
        with page.expect_download() as dl:
            page.get_by_role("link", name="Download results (CSV)").click()
        body = open(dl.value.path()).read()
        assert body.startswith("phone,wamid,status"), body
        assert len(body.strip().splitlines()) == 6, body

        # Let the reports arrive, then the chart and a message's timeline.
        deadline = time.time() + 30
        while time.time() < deadline:
            page.goto(campaign_url)
            if page.locator("svg.chart").count() and \
                    int(page.locator("[data-count=delivered]").inner_text()) + \
                    int(page.locator("[data-count=read]").inner_text()) == 5:
                break
            time.sleep(0.5)
        expect(page.locator("svg.chart polyline")).to_have_count(4)
        shot(page, "campaign")
        page.locator("a[href^='/ui/messages/']").first.click()
        expect(page.locator("ol.timeline li").first).to_contain_text("sent")
        shot(page, "message")
        page.get_by_role("link", name="Messages").first.click()
        page.get_by_label("Message id (wamid) or phone number").fill("+919876500002")
        page.get_by_role("button", name="Search").click()
        expect(page.locator("tbody tr")).to_have_count(1)
        shot(page, "messages")

        page.goto(BASE + "/ui/campaigns")
        expect(page.locator("tbody tr")).to_have_count(1)
        shot(page, "campaigns")
        page.set_viewport_size({"width": 390, "height": 844})
        shot(page, "campaigns-390")
        page.set_viewport_size({"width": 1280, "height": 800})

        # Webhooks: add an endpoint (secret shown once), test ping, a dead letter, redrive.
        page.get_by_role("link", name="Webhooks").click()
        expect(page.locator(".empty")).to_contain_text("No endpoints yet")
        page.get_by_label("URL", exact=True).fill(f"http://127.0.0.1:{rport}/reject")
        page.get_by_role("button", name="Add endpoint").click()
        expect(page.locator("#secret")).to_contain_text("whsec_")
        shot(page, "webhook-secret")
        page.get_by_role("link", name="Continue to the endpoint").click()
        page.get_by_role("button", name="Send a test ping").click()
        expect(page.locator("p.notice")).to_contain_text("answered 400")
        wamid = f"wamid.browser{int(time.time() * 1000)}"
        req = urllib.request.Request(BASE + "/datagen-webhook", method="POST", data=json.dumps({
            "events": {"eventType": "DELIVERY EVENTS", "mid": wamid, "timestamp": "1732700000"},
            "notificationAttributes": {"status": "delivered"},
            "recipient": {"to": "919876543210"}, "sender": {"from": NUMBER.lstrip("+")}}).encode())
        urllib.request.urlopen(req).read()
        endpoint_url = page.url.split("?")[0]
        deadline = time.time() + 30
        while time.time() < deadline:
            page.goto(endpoint_url + "?status=dead")
            if page.locator("td.delivery-status").count():
                break
            time.sleep(0.5)
        expect(page.locator("td.delivery-status").first).to_have_text("dead")
        page.goto(endpoint_url)
        page.get_by_label("URL", exact=True).fill(f"http://127.0.0.1:{rport}/hooks")
        page.get_by_role("button", name="Save").click()
        expect(page.locator("p.notice")).to_have_text("Saved.")
        # No wait: a redrive's first attempt reads the endpoint from the store, new URL and all.
        page.get_by_role("button", name="Redrive dead letters").click()
        expect(page.locator("p.notice")).to_contain_text("dead deliveries sent again")
        # Redriven, the dead letter is pending, then delivered to the new URL.
        deadline = time.time() + 30
        while time.time() < deadline:
            page.goto(endpoint_url + "?status=succeeded")
            if page.locator("td.delivery-status").count():
                break
            time.sleep(0.5)
        expect(page.locator("td.delivery-status").first).to_have_text("succeeded")
        page.goto(endpoint_url + "?status=dead")
        expect(page.locator("p", has_text="No deliveries in this list.")).to_be_visible()
        page.goto(endpoint_url)
        shot(page, "webhook")
        page.locator("a[href^='/ui/deliveries/']").first.click()
        expect(page.locator("h2").first).to_have_text("Attempts")
        page.get_by_role("link", name="Webhooks").first.click()
        shot(page, "webhooks")

        # Another project's campaign by URL: not found, nothing of it shown.
        page.goto(f"{BASE}/ui/campaigns/{rival_campaign}")
        expect(page.locator("p.problem")).to_contain_text("nothing here")
        assert "Rival secret plan" not in page.content()

        # Sign out: the pages are closed again.
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/ui/sign-in$"))
        page.goto(campaign_url)
        expect(page).to_have_url(re.compile(r"/ui/sign-in$"))

        # The admin's pages.
        page.get_by_label("API key or admin token").fill(ADMIN)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(re.compile(r"/ui/admin$"))
        expect(page.locator("body")).to_contain_text(NUMBER)
        shot(page, "admin")
        page.get_by_role("button", name="Sign out").click()
        browser.close()

    receiver.shutdown()
    if problems:
        print("browser test: problems seen:", *problems, sep="\n  ", file=sys.stderr)
        sys.exit(1)
    print("browser test: passed")


if __name__ == "__main__":
    main()

"""The dashboard at /mod/dashboard/ (and /dashboard/), driven in headless Chromium
(Debian's chromium and chromium-driver, through selenium) on a 3-member cluster: the pages
load with every member up and one leader, live charts fill from /metrics, a key written,
edited and deleted in the UI (v2 and v3 views) is seen so by curl on another member, a
killed member shows as down, and signing in reaches keys behind v2 and v3 auth. The
Agent tab lists three `musubi agent`s from one's `-http-addr` and shows a killed one
failed. Screenshots are saved and checked (a PNG of the window's size that is not blank).

etcd 3.4 has no dashboard: these tests are skipped when MUSUBI_TEST_TARGET=etcd."""

import base64
import json
import os
import struct
import subprocess
import threading
import zlib

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.support.select import Select

from agents import FAILURE_DETECTION_BOUND, SERF_BIN, agents, statuses  # noqa: F401
from harness import free_port, raw_request, target_kind, wait_for
from v3util import Ctl3

pytestmark = pytest.mark.skipif(target_kind() == "etcd",
                                reason="etcd 3.4 has no dashboard; musubi serves one")

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Flags that let Debian's Chromium run headless here, offline and without a sandbox.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
WIDTH, HEIGHT = 1400, 900


@pytest.fixture
def browser(tmp_path, shots, request):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    opts.add_argument("--user-data-dir=%s" % (tmp_path / "chromium-profile"))
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_window_size(WIDTH, HEIGHT)
    try:
        yield driver
        # A failed test leaves the page as it was, to look at.
        if getattr(getattr(request.node, "rep_call", None), "failed", False):
            driver.save_screenshot(os.path.join(shots, request.node.name + ".failed.png"))
            print("page at failure: %s\nlog: %s" % (driver.current_url, driver.get_log("browser")))
    finally:
        driver.quit()


@pytest.fixture
def shots(tmp_path):
    """Where screenshots go: $MUSUBI_DASHBOARD_SHOTS if set (to look at them), else the
    test's temporary directory."""
    where = os.environ.get("MUSUBI_DASHBOARD_SHOTS") or str(tmp_path / "shots")
    os.makedirs(where, exist_ok=True)
    return where


def screenshot(driver, where, name):
    path = os.path.join(where, name + ".png")
    assert driver.save_screenshot(path), path
    viewport = driver.execute_script(
        "return [innerWidth, innerHeight].map(x => Math.round(x * devicePixelRatio))")
    check_png(path, tuple(viewport))
    return path


def check_png(path, size):
    """A PNG of the page's viewport (`size`) whose pixels are not all one colour."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == size, (path, width, height, size)
    idat, pos = b"", 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    pixels = zlib.decompress(idat)
    # A blank page is a handful of byte values after PNG's filters; a rendered one with
    # text, badges and charts has far more.
    assert len(set(pixels)) > 64, (path, len(set(pixels)))


def curl(*args):
    out = subprocess.run(["curl", "-sS", "--max-time", "10"] + list(args),
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    return out.stdout


def v2_get(member, key):
    return json.loads(curl(member.url + "/v2/keys" + key))


def v3_get(member, key):
    body = json.dumps({"key": base64.b64encode(key.encode()).decode()})
    return json.loads(curl("-X", "POST", member.url + "/v3/kv/range", "-d", body))


def ui(what, check, timeout=20):
    """wait_for on the page: an element not there yet (or replaced meanwhile) is a no."""
    def safe():
        try:
            return check()
        except (NoSuchElementException, StaleElementReferenceException, LookupError):
            return False
    return wait_for(what, safe, timeout=timeout)


def rows(driver):
    """{member name: state} from the Members table."""
    found = {}
    for row in driver.find_elements("css selector", "#members-table tbody tr"):
        found[row.get_attribute("data-name")] = row.get_attribute("data-state")
    return found


def wait_members(driver, check, what):
    ui(what, lambda: check(rows(driver)), timeout=30)


def one_leader_and_followers(states, names):
    got = [states.get(n) for n in names]
    return got.count("leader") == 1 and all(s in ("leader", "follower") for s in got)


def script_errors(driver):
    """Errors the page's scripts raised (a refused request, which Chromium also logs as an
    error, is an answer the page shows, not a script error)."""
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"
            and "Failed to load resource" not in e["message"]]


def click(driver, css):
    driver.find_element("css selector", css).click()


def fill(driver, scope, name, text):
    box = driver.find_element("css selector", "%s [name=%s]" % (scope, name))
    box.clear()
    box.send_keys(text)


def button(driver, scope, text):
    for b in driver.find_elements("css selector", scope + " button"):
        if b.text == text:
            return b
    raise LookupError("no button %r in %s" % (text, scope))


def status_text(driver, scope):
    return driver.find_element("css selector", scope + " .status").text


def test_the_mount_points_serve_the_page_and_its_files(fleet):
    member = fleet.target().start()
    for path in ("/mod/dashboard/", "/dashboard/"):
        st, h, body = raw_request(member.client_port, "GET", path)
        assert st == 200 and h["content-type"] == "text/html; charset=utf-8", (st, h)
        assert b"musubi dashboard" in body
    st, h, _ = raw_request(member.client_port, "GET", "/mod/dashboard")
    assert st == 301 and h["location"] == "/mod/dashboard/", (st, h)
    st, h, _ = raw_request(member.client_port, "GET", "/mod/dashboard/app.js")
    assert st == 200 and h["content-type"].startswith("text/javascript"), (st, h)
    assert raw_request(member.client_port, "GET", "/mod/dashboard/none.js")[0] == 404
    assert raw_request(member.client_port, "POST", "/mod/dashboard/")[0] == 405


def test_pages_load_on_a_three_member_cluster_and_charts_fill(fleet, browser, shots):
    members = fleet.cluster(3)
    names = [m.name for m in members]
    for path in ("/dashboard/", "/mod/dashboard/"):
        browser.get(members[0].url + path)
        wait_members(browser, lambda s: one_leader_and_followers(s, names),
                     "three members, one leader, on " + path)
    ui("every member healthy", lambda: len(browser.find_elements(
        "css selector", "#members-table .badge.healthy")) == 3, timeout=30)
    assert "member n1" in browser.find_element("id", "member-name").text
    screenshot(browser, shots, "members")

    # Writes while the Stats tab samples: its write rate goes above zero.
    stop = threading.Event()

    def write():
        i = 0
        while not stop.is_set():
            raw_request(members[1].client_port, "PUT", "/v2/keys/load/%d" % (i % 20),
                        body="value=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
            raw_request(members[0].client_port, "GET", "/v2/keys/load/%d" % (i % 20))
            i += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        browser.get(members[0].url + "/mod/dashboard/#stats")

        def rate(id_, series):
            text = browser.find_element("id", "now-" + id_).text
            for part in text.split(" · "):
                if part.startswith(series + " "):
                    return float(part[len(series) + 1:])
            return 0.0

        ui("a write rate", lambda: rate("writes", "keyspace revisions") > 0, timeout=20)
        ui("a v2 read rate", lambda: rate("reads", "v2 GET") > 0, timeout=20)
        ui("an fsync latency", lambda: "fsync" in browser.find_element("id", "now-fsync").text,
                 timeout=20)
        # The leader measures the round trips to its followers: choose it.
        browser.get(members[0].url + "/mod/dashboard/#members")
        wait_members(browser, lambda s: one_leader_and_followers(s, names), "a leader")
        leader = [n for n, state in rows(browser).items() if state == "leader"][0]
        browser.get(members[0].url + "/mod/dashboard/#stats")
        choose = Select(browser.find_element("id", "stats-member"))
        ui("the member list", lambda: len(choose.options) == 3)
        choose.select_by_visible_text(leader)
        followers = [n for n in names if n != leader]
        ui("peer round trips", lambda: all(
            n in browser.find_element("id", "now-peers").text for n in followers), timeout=20)
        # Lines of several points on every chart.
        ui("lines drawn", lambda: all(int(browser.find_element("id", "chart-" + c).get_attribute(
            "data-points")) >= 5 for c in ("writes", "reads", "fsync", "peers")), timeout=20)
        screenshot(browser, shots, "stats")
        # Another member's metrics, fetched across origins.
        choose.select_by_visible_text("n3" if leader != "n3" else "n2")
        ui("another member's samples",
                 lambda: "Raft proposals" in browser.find_element("id", "now-writes").text, timeout=20)
        assert browser.find_element("id", "stats-error").text == ""
    finally:
        stop.set()
        writer.join()
    assert script_errors(browser) == []


def test_a_key_written_in_the_v2_view_is_readable_with_curl(fleet, browser, shots):
    members = fleet.cluster(3)
    other = members[2]
    curl("-X", "PUT", other.url + "/v2/keys/serf/manager/node_name", "-d", "value=manager")
    browser.get(members[0].url + "/mod/dashboard/#keys-v2")
    pane = "#view-keys-v2"
    # The tree shows what curl wrote; a click opens a directory, another shows the key.
    ui("the tree", lambda: browser.find_elements("css selector", pane + " [data-path='/serf']"))
    click(browser, pane + " [data-path='/serf']")
    ui("/serf opened", lambda: browser.find_elements("css selector", pane + " [data-path='/serf/manager']"))
    click(browser, pane + " [data-path='/serf/manager']")
    ui("/serf/manager opened", lambda: browser.find_elements(
        "css selector", pane + " [data-path='/serf/manager/node_name']"))
    click(browser, pane + " [data-path='/serf/manager/node_name']")
    ui("the value", lambda: browser.find_element(
        "css selector", pane + " textarea[name=value]").get_attribute("value") == "manager")

    # Create: seed 000's key, written in the UI, read with curl on another member.
    click(browser, pane + " [data-act=new]")
    fill(browser, pane, "key", "/serf/manager/bind")
    fill(browser, pane, "value", "192.168.39.3")
    button(browser, pane, "Create").click()
    ui("created", lambda: status_text(browser, pane) == "created")
    node = v2_get(other, "/serf/manager/bind")["node"]
    assert node["value"] == "192.168.39.3" and "ttl" not in node, node

    # Edit the value and give it a TTL.
    fill(browser, pane, "value", "10.0.0.7")
    fill(browser, pane, "ttl", "300")
    button(browser, pane, "Save").click()
    ui("saved", lambda: status_text(browser, pane) == "saved")
    node = v2_get(other, "/serf/manager/bind")["node"]
    assert node["value"] == "10.0.0.7" and 290 <= node["ttl"] <= 300, node
    assert "TTL (s)" in browser.find_element("css selector", pane + " dl.meta").text
    screenshot(browser, shots, "keys-v2")

    # A second create of the same key is refused with etcd's message.
    click(browser, pane + " [data-act=new]")
    fill(browser, pane, "key", "/serf/manager/bind")
    fill(browser, pane, "value", "again")
    button(browser, pane, "Create").click()
    ui("refused", lambda: "Key already exists" in status_text(browser, pane))

    # Delete, confirmed in the browser's dialog.
    click(browser, pane + " [data-path='/serf/manager/bind']")
    ui("the key shown", lambda: button(browser, pane, "Delete"))
    button(browser, pane, "Delete").click()
    browser.switch_to.alert.accept()
    ui("deleted", lambda: "deleted" in browser.find_element("css selector", pane + " .detail-pane").text)
    assert v2_get(other, "/serf/manager/bind")["errorCode"] == 100
    assert script_errors(browser) == []


def test_a_key_written_in_the_v3_view_is_readable_with_curl(fleet, browser, shots):
    members = fleet.cluster(3)
    other = members[1]
    browser.get(members[0].url + "/mod/dashboard/#keys-v3")
    pane = "#view-keys-v3"
    ui("the key count", lambda: " key" in browser.find_element("css selector", pane + " .note").text)
    click(browser, pane + " [data-act=new]")
    fill(browser, pane, "key", "app/config/port")
    fill(browser, pane, "value", "8080")
    fill(browser, pane, "ttl", "120")
    button(browser, pane, "Create").click()
    ui("created", lambda: status_text(browser, pane) == "created")
    kvs = v3_get(other, "app/config/port")["kvs"]
    assert base64.b64decode(kvs[0]["value"]) == b"8080" and kvs[0].get("lease"), kvs
    ttl = json.loads(curl("-X", "POST", other.url + "/v3/kv/lease/timetolive",
                          "-d", json.dumps({"ID": kvs[0]["lease"]})))
    assert 100 <= int(ttl["TTL"]) <= 120, ttl
    assert "of 120" in browser.find_element("css selector", pane + " dl.meta").text

    # The tree splits at '/': a prefix node, then the key; edit keeps the lease.
    click(browser, pane + " [data-path='%s']" % base64.b64encode(b"app/").decode())
    click(browser, pane + " [data-path='%s']" % base64.b64encode(b"app/config/").decode())
    click(browser, pane + " [data-path='k:%s']" % base64.b64encode(b"app/config/port").decode())
    ui("the value", lambda: browser.find_element(
        "css selector", pane + " textarea[name=value]").get_attribute("value") == "8080")
    fill(browser, pane, "value", "9090")
    button(browser, pane, "Save").click()
    ui("saved", lambda: status_text(browser, pane) == "saved")
    kv = v3_get(other, "app/config/port")["kvs"][0]
    assert base64.b64decode(kv["value"]) == b"9090" and kv["lease"] == kvs[0]["lease"], kv
    screenshot(browser, shots, "keys-v3")

    # Delete the whole prefix from its node.
    curl("-X", "POST", other.url + "/v3/kv/put",
         "-d", json.dumps({"key": base64.b64encode(b"app/other").decode(), "value": "eA=="}))
    button(browser, pane, "Delete").click()  # the key first
    browser.switch_to.alert.accept()
    ui("deleted", lambda: "deleted" in browser.find_element("css selector", pane + " .detail-pane").text)
    assert "kvs" not in v3_get(other, "app/config/port")
    click(browser, pane + " [data-path='%s']" % base64.b64encode(b"app/").decode())
    ui("the prefix pane", lambda: "keys under this prefix" in browser.find_element(
        "css selector", pane + " .detail-pane").text)
    button(browser, pane, "Delete all").click()
    browser.switch_to.alert.accept()
    ui("prefix deleted", lambda: "deleted" in browser.find_element("css selector", pane + " .detail-pane").text)
    assert "kvs" not in v3_get(other, "app/other")
    assert script_errors(browser) == []


def test_a_killed_member_shows_as_down(fleet, browser, shots):
    members = fleet.cluster(3)
    browser.get(members[0].url + "/mod/dashboard/")
    wait_members(browser, lambda s: one_leader_and_followers(s, ["n1", "n2", "n3"]), "all up")
    members[2].kill()
    wait_members(browser, lambda s: s.get("n3") == "down" and one_leader_and_followers(s, ["n1", "n2"]),
                 "n3 down, n1 and n2 up with a leader")
    row = browser.find_element("css selector", "#members-table tr[data-name=n3]")
    assert "unreachable" in row.text, row.text
    screenshot(browser, shots, "member-down")
    # It comes back.
    members[2].start()
    wait_members(browser, lambda s: one_leader_and_followers(s, ["n1", "n2", "n3"]), "n3 back")


def test_signing_in_reaches_keys_behind_v2_and_v3_auth(fleet, browser, shots):
    member = fleet.target().start()
    ctl = Ctl3(member)
    ctl("user", "add", "root:rootpw")
    ctl("auth", "enable")
    curl("-X", "PUT", member.url + "/v2/auth/users/root", "-d", '{"user":"root","password":"rootpw"}')
    curl("-X", "PUT", member.url + "/v2/auth/enable")
    browser.get(member.url + "/mod/dashboard/#keys-v3")
    pane = "#view-keys-v3"
    note = lambda: browser.find_element("css selector", "#view-keys-v3 .note").text  # noqa: E731
    ui("v3's refusal", lambda: "user name is empty" in note())

    fill(browser, "#signin", "user", "root")
    fill(browser, "#signin", "password", "wrong")
    click(browser, "#signin button[type=submit]")
    ui("a failed sign-in", lambda: "authentication failed" in browser.find_element(
        "css selector", "#signin .who").text)
    fill(browser, "#signin", "password", "rootpw")
    click(browser, "#signin button[type=submit]")
    ui("signed in", lambda: browser.find_element("css selector", "#signin .who").text
       == "signed in as root")
    ui("the keys listed", lambda: note().endswith((" key", " keys")))

    click(browser, pane + " [data-act=new]")
    fill(browser, pane, "key", "secret/a")
    fill(browser, pane, "value", "s3")
    button(browser, pane, "Create").click()
    ui("created", lambda: status_text(browser, pane) == "created")
    assert "user name is empty" in curl("-X", "POST", member.url + "/v3/kv/range",
                                        "-d", json.dumps({"key": "c2VjcmV0L2E="}))
    token = json.loads(curl("-X", "POST", member.url + "/v3/auth/authenticate",
                            "-d", '{"name":"root","password":"rootpw"}'))["token"]
    got = json.loads(curl("-X", "POST", member.url + "/v3/kv/range", "-H", "Authorization: " + token,
                          "-d", json.dumps({"key": "c2VjcmV0L2E="})))
    assert base64.b64decode(got["kvs"][0]["value"]) == b"s3", got

    # v2 with basic auth: the same sign-in.
    click(browser, "nav a[data-view=keys-v2]")
    pane = "#view-keys-v2"
    assert browser.find_element("css selector", "#signin .who").text == "signed in as root"
    click(browser, pane + " [data-act=new]")
    fill(browser, pane, "key", "/guarded")
    fill(browser, pane, "value", "v2s")
    button(browser, pane, "Create").click()
    ui("created", lambda: status_text(browser, pane) == "created")
    assert json.loads(curl("-u", "root:rootpw", member.url + "/v2/keys/guarded"))["node"]["value"] == "v2s"
    screenshot(browser, shots, "signed-in")
    # Signed out, the key views show the APIs' refusals again.
    click(browser, "#signin button[name=signout]")
    click(browser, "nav a[data-view=keys-v3]")
    ui("v3's refusal again", lambda: "user name is empty" in note())
    assert script_errors(browser) == []


def agent_rows(driver):
    """{member name: status} from the Agent table."""
    return {row.get_attribute("data-name"): row.get_attribute("data-status")
            for row in driver.find_elements("css selector", "#agent-table tbody tr[data-name]")}


@pytest.mark.skipif(not os.path.exists(SERF_BIN), reason="the agent fixtures drive Debian's serf")
def test_the_agent_view_lists_the_agents_members_and_a_failed_one(fleet, agents, browser, shots):
    member = fleet.target().start()
    http = "127.0.0.1:%d" % free_port()
    a1 = agents("a1", tags=["role=web", "dc=east"], args=["-http-addr", http])
    agents("a2", join=[a1.gossip_addr])
    a3 = agents("a3", join=[a1.gossip_addr])
    everyone = {"a1": "alive", "a2": "alive", "a3": "alive"}
    wait_for("three agents joined", lambda: statuses(a1) == everyone, timeout=15)

    browser.get(member.url + "/mod/dashboard/#agent")
    fill(browser, "#agent-form", "address", http)
    click(browser, "#agent-form button[type=submit]")
    ui("all three alive", lambda: agent_rows(browser) == everyone)
    row = browser.find_element("css selector", "#agent-table tr[data-name=a1]")
    assert a1.gossip_addr in row.text and "dc=east, role=web" in row.text, row.text
    # Kept in the URL: a bookmark or a reload shows the same agent.
    assert "agent=" + http.replace(":", "%3A") in browser.current_url, browser.current_url

    a3.kill()
    ui("a3 failed", lambda: agent_rows(browser) == dict(everyone, a3="failed"),
       timeout=FAILURE_DETECTION_BOUND)
    assert "1 failed" in browser.find_element("css selector", "#agent-updated").text
    screenshot(browser, shots, "agent-failed")
    browser.refresh()
    ui("the same agent after a reload", lambda: agent_rows(browser) == dict(everyone, a3="failed"))
    assert script_errors(browser) == []
    # The agent itself gone: the reason shown, the last rows kept but greyed.
    a1.kill()
    ui("a1 unreachable", lambda: "cannot list the agent's members" in browser.find_element(
        "css selector", "#agent-updated").text)
    assert "stale" in browser.find_element("css selector", "#agent-table").get_attribute("class")
    assert agent_rows(browser) == dict(everyone, a3="failed")

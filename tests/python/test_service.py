"""What an operator sees: Prometheus metrics on --http, and the jobs page in a real browser.

`serve --http ADDR` serves /metrics, /healthz and the jobs page, behind the same bearer tokens as
the Flight service. A job with one shard that always fails and one that is slowed down (through
FLIGHTBATCH_FAULTS) runs long enough to be watched:

- /metrics is scraped while the job runs and after it ends, and its counters are checked against
  the job's own status and against what DoGet and DoPut carried;
- headless Chromium (Debian's chromium and chromium-driver, driven over the WebDriver protocol
  with the standard library) logs in with a token, opens the job's page while it runs and reads
  the shard counts and states from the DOM; the page refreshes its summary and shards in place
  (the document stays) until the job ends, and then shows the failed shard's error. Screenshots are saved under the test's temp directory.

scripts/test.sh installs Chromium and sets FLIGHTBATCH_REQUIRE_CHROMIUM=1, so that there the
browser test fails, rather than skips, when Chromium is missing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import start_server

SHARDS = 3
MAX_ATTEMPTS = 2
# part-00000 fails every attempt; part-00001 is slowed down so that the job runs for a while.
FAULTS = "part-00000:always,part-00001:sleep=12"
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


def token_file(work, token: str) -> str:
    path = work / "tokens.json"
    path.write_text(json.dumps({"tokens": [
        {"name": "operator", "sha256": hashlib.sha256(token.encode()).hexdigest(), "role": "submit"},
    ]}))
    return str(path)


def http_addr(srv, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in srv._stdout_lines:
            m = re.match(r"^flightbatch http on (http://127\.0\.0\.1:\d+)$", line)
            if m:
                return m.group(1)
        time.sleep(0.05)
    raise AssertionError(f"no 'flightbatch http on' line: {srv._stdout_lines!r}")


@pytest.fixture
def watched(flightbatch_bin, tmp_path, monkeypatch):
    """A server with --http, a token, and faults that make a job run a while and fail one shard."""
    token = secrets.token_urlsafe(24)
    monkeypatch.setenv("FLIGHTBATCH_FAULTS", FAULTS)
    srv = start_server(
        flightbatch_bin, tmp_path / "srv", "--demo-shards", str(SHARDS), "--max-attempts", str(MAX_ATTEMPTS),
        "--http", "127.0.0.1:0", "--auth-tokens", token_file(tmp_path, token),
    )
    opts = flight.FlightCallOptions(timeout=60, headers=[(b"authorization", b"Bearer " + token.encode())])
    client = srv.connect()
    yield srv, client, opts, token, http_addr(srv)
    client.close()
    assert srv.stop() == 0


def act(client, opts, kind: str, body: dict) -> dict:
    res = list(client.do_action(flight.Action(kind, json.dumps(body).encode()), opts))
    return json.loads(res[0].body.to_pybytes())


def submit(client, opts) -> str:
    return act(client, opts, "psd", {"dataset": "demo", "fs": 250, "nperseg": 128})["job_id"]


def status(client, opts, job: str) -> dict:
    return act(client, opts, "job-status", {"job_id": job})


def wait_end(client, opts, job: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = status(client, opts, job)
        if st["state"] in TERMINAL:
            return st
        assert time.monotonic() < deadline, f"job {job} still {st['state']} after {timeout}s"
        time.sleep(0.2)


def scrape(base: str, token: str | None) -> dict[str, float]:
    req = urllib.request.Request(base + "/metrics")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=30) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("flightbatch_"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_metrics_follow_a_job(watched):
    srv, client, opts, token, base = watched
    with pytest.raises(urllib.error.HTTPError) as refused:
        scrape(base, None)
    assert refused.value.code == 401
    with urllib.request.urlopen(base + "/healthz", timeout=30) as resp:
        assert resp.read() == b"ok\n"

    job = submit(client, opts)
    # During: the slowed shard keeps the job running.
    deadline = time.monotonic() + 60
    while True:
        st = status(client, opts, job)
        during = scrape(base, token)
        if st["state"] == "RUNNING" and st["shards"]["running"] >= 1 and during['flightbatch_children_running{executor="local"}'] >= 1:
            break
        assert st["state"] not in TERMINAL, f"the job ended before it was seen running: {st}"
        assert time.monotonic() < deadline, f"never saw the job running: {st} {during}"
        time.sleep(0.1)
    assert during['flightbatch_jobs{state="RUNNING"}'] == 1
    assert during['flightbatch_jobs{state="FAILED"}'] == 0

    st = wait_end(client, opts, job)
    assert st["state"] == "FAILED"
    after = scrape(base, token)
    shards = st["shards"]
    assert after['flightbatch_jobs{state="FAILED"}'] == 1
    assert after['flightbatch_jobs{state="RUNNING"}'] == 0
    assert after['flightbatch_children_running{executor="local"}'] == 0
    assert after['flightbatch_children_succeeded_total{executor="local"}'] == shards["succeeded"] == SHARDS - 1
    assert after['flightbatch_children_failed_total{executor="local"}'] == shards["failed"] == 1
    # The failing shard was tried MAX_ATTEMPTS times: MAX_ATTEMPTS - 1 retries.
    assert after['flightbatch_children_retried_total{executor="local"}'] == MAX_ATTEMPTS - 1
    assert after['flightbatch_child_duration_seconds_count{executor="local"}'] == SHARDS
    # The slowed shard alone took 12 s.
    assert after['flightbatch_child_duration_seconds_sum{executor="local"}'] >= 12

    # DoGet of a finished part and DoPut of a small table are counted, records and bytes.
    before_get = after['flightbatch_stream_records_total{call="DoGet"}']
    part = client.do_get(flight.Ticket(f"jobs/{job}/part-00002".encode()), opts).read_all()
    table = pa.table({"patient_id": ["p1", "p2", "p3"], "samples": [[0.0, 1.0]] * 3})
    writer, reader = client.do_put(flight.FlightDescriptor.for_path("datasets", "uploaded"), table.schema, opts)
    writer.write_table(table)
    writer.done_writing()
    reader.read()
    writer.close()
    end = scrape(base, token)
    assert end['flightbatch_stream_records_total{call="DoGet"}'] - before_get == part.num_rows > 0
    assert end['flightbatch_stream_bytes_total{call="DoGet"}'] > after['flightbatch_stream_bytes_total{call="DoGet"}']
    assert end['flightbatch_stream_records_total{call="DoPut"}'] == table.num_rows
    assert end['flightbatch_stream_bytes_total{call="DoPut"}'] > 0
    assert end['flightbatch_active_streams{call="DoGet"}'] == 0
    assert end['flightbatch_active_streams{call="DoPut"}'] == 0

    log = srv.stderr_text()
    assert re.search(rf"msg=audit component=audit caller=operator call=DoAction action=psd dataset=demo job={job} code=OK", log), log[-3000:]
    assert re.search(rf"msg=audit component=audit caller=operator call=DoGet job={job} shard=part-00002 records={part.num_rows} bytes=\d+ code=OK", log)
    assert re.search(r"msg=audit component=audit caller=operator call=DoPut dataset=uploaded records=3 bytes=\d+ code=OK", log)
    assert re.search(r"msg=audit component=audit caller=anonymous call=\"HTTP /metrics\" code=Unauthenticated", log)


# ---------------------------------------------------------------------------------------------
# The browser


CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1400,900",
]
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


def chromium_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        msg = "headless Chromium needs Debian's chromium and chromium-driver (scripts/test.sh installs them)"
        if os.environ.get("FLIGHTBATCH_REQUIRE_CHROMIUM") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return chromium, driver


class WebDriver:
    """The few WebDriver commands the test needs, over HTTP with the standard library."""

    def __init__(self, driver: str, chromium: str, profile: str, log: str):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([driver, f"--port={port}", f"--log-path={log}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                if self._call("GET", "/status")["ready"]:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "chromedriver did not get ready in 60 s"
            time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium, "args": CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]}}}}
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _call(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return json.loads(resp.read())["value"]
        except urllib.error.HTTPError as e:
            raise AssertionError(f"WebDriver {method} {path}: {e.code} {e.read()[:500]!r}") from None

    def cmd(self, method: str, path: str, body: dict | None = None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def go(self, url: str) -> None:
        self.cmd("POST", "/url", {"url": url})

    def js(self, script: str):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": []})

    def element(self, css: str) -> str:
        return self.cmd("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def screenshot(self, path) -> None:
        path.write_bytes(base64.b64decode(self.cmd("GET", "/screenshot")))

    def quit(self) -> None:
        try:
            self.cmd("DELETE", "")
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# The page as the test reads it: the job's state and counts, and each shard's row.
READ_PAGE = """
const counts = document.querySelector('#counts');
if (!counts) { return null; }
return {
  state: document.querySelector('#job-state').textContent.trim(),
  counts: Object.assign({}, counts.dataset),
  text: counts.textContent.trim(),
  error: (document.querySelector('#job-error') || {}).textContent || '',
  shards: Array.from(document.querySelectorAll('tr.shard')).map(tr => ({
    name: tr.dataset.shard, state: tr.dataset.state, attempts: tr.dataset.attempts,
    errors: Array.from(tr.querySelectorAll('.attempt-error')).map(e => e.textContent.trim()),
    bar: !!tr.querySelector('.bar'),
  })),
};
"""


def test_jobs_page_in_a_browser(watched, tmp_path):
    chromium, driver = chromium_paths()
    srv, client, opts, token, base = watched
    wd = WebDriver(driver, chromium, str(tmp_path / "profile"), str(tmp_path / "chromedriver.log"))
    try:
        # Not logged in: the page sends the browser to the login form, which sends it back.
        wd.go(base + "/jobs")
        assert "/login" in wd.cmd("GET", "/url")
        wd.cmd("POST", f"/element/{wd.element('#token')}/value", {"text": token})
        wd.cmd("POST", f"/element/{wd.element('#submit')}/click", {})
        deadline = time.monotonic() + 60
        while not wd.cmd("GET", "/url").endswith("/jobs"):
            assert time.monotonic() < deadline, f"login did not lead back to /jobs: {wd.cmd('GET', '/url')}"
            time.sleep(0.1)

        job = submit(client, opts)
        wd.go(f"{base}/jobs/{job}")
        page = wd.js(READ_PAGE)
        assert page is not None, "the job page has no #counts"
        # The slowed shard keeps the job running while the page is read.
        assert page["state"] in ("SUBMITTED", "RUNNING"), page
        assert int(page["counts"]["total"]) == SHARDS == len(page["shards"])
        assert [s["name"] for s in page["shards"]] == [f"part-{i:05d}" for i in range(SHARDS)]
        assert int(page["counts"]["succeeded"]) < SHARDS
        wd.screenshot(tmp_path / "job-running.png")
        # The refresh replaces the summary and the shards in place: a mark left on the document stays.
        wd.js("window.flightbatchMark = 'same document'; return null;")

        # The page refreshes itself: no navigation here until it shows the end.
        deadline = time.monotonic() + 180
        while True:
            page = wd.js(READ_PAGE)
            if page and page["state"] in TERMINAL:
                break
            assert time.monotonic() < deadline, f"the page never showed the job's end: {page}"
            time.sleep(0.5)
        wd.screenshot(tmp_path / "job-finished.png")
        st = status(client, opts, job)
        assert page["state"] == st["state"] == "FAILED"
        assert int(page["counts"]["succeeded"]) == st["shards"]["succeeded"] == SHARDS - 1
        assert int(page["counts"]["failed"]) == st["shards"]["failed"] == 1
        assert page["text"].startswith(f"{SHARDS - 1} of {SHARDS} child jobs succeeded, 1 failed")
        by_name = {s["name"]: s for s in page["shards"]}
        failed = by_name["part-00000"]
        assert failed["state"] == "FAILED" and failed["attempts"] == str(MAX_ATTEMPTS)
        want = f"injected fault (FLIGHTBATCH_FAULTS) in shard part-00000, attempt {MAX_ATTEMPTS}"
        assert any(want in e for e in failed["errors"]), failed
        assert want in page["error"]
        assert all(s["state"] == "SUCCEEDED" and s["bar"] for n, s in by_name.items() if n != "part-00000")
        assert wd.js("return window.flightbatchMark || null;") == "same document", "the job page was reloaded"
        # The page fetched its refreshes, and once it shows the job's end it fetches no more.
        fetches = "return performance.getEntriesByType('resource').filter(e => e.name.includes('rows=1')).length;"
        seen = wd.js(fetches)
        assert seen > 0, "the page showed the job's end without a refresh"
        time.sleep(4)
        assert wd.js(fetches) == seen, "the page of a finished job goes on refreshing"

        # The failed shards alone, through the summary's link.
        wd.cmd("POST", f"/element/{wd.element('#filter-FAILED')}/click", {})
        deadline = time.monotonic() + 30
        while "state=FAILED" not in wd.cmd("GET", "/url"):
            assert time.monotonic() < deadline, "the failed shards link did not lead on"
            time.sleep(0.1)
        page = wd.js(READ_PAGE)
        assert [(s["name"], s["state"]) for s in page["shards"]] == [("part-00000", "FAILED")], page["shards"]
        assert page["state"] == "FAILED" and int(page["counts"]["total"]) == SHARDS
        assert wd.js("return document.querySelector('script') === null;"), "a finished job's page refreshes itself"

        wd.go(base + "/jobs")
        row = wd.js(f"""const tr = document.querySelector('tr.job[data-job="{job}"]');
            return tr && {{state: tr.dataset.state, text: tr.textContent}};""")
        assert row and row["state"] == "FAILED" and "operator" in row["text"] and "psd" in row["text"], row
        for png in ("job-running.png", "job-finished.png"):
            assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        wd.quit()


def old_jobs(store, n: int) -> list[str]:
    """Writes n finished psd jobs into a store, as a server finds a long history at start; returns
    their IDs, oldest first."""
    ids = []
    t0 = 1_700_000_000_000  # ms
    for i in range(n):
        ms = t0 + i * 60_000
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(ms // 1000)) + f"{ms % 1000:03d}Z"
        job = f"{stamp}-{i:06x}"
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))
        manifest = {
            "job_id": job, "function": "psd", "dataset": "demo", "dataset_version": "old", "params": {"fs": 250},
            "state": "SUCCEEDED", "max_attempts": 3, "executor": "local", "created_at": at, "started_at": at,
            "finished_at": at, "version": "test",
            "shards": [{"name": "part-00000", "input": "datasets/demo/part-00000.arrow", "format": "arrow",
                        "input_rows": 1, "state": "SUCCEEDED", "attempts": 1}],
        }
        d = store / "jobs" / job
        d.mkdir(parents=True)
        (d / "manifest.json").write_text(json.dumps(manifest))
        ids.append(job)
    return ids


def test_jobs_page_pages_and_refreshes_its_rows(flightbatch_bin, tmp_path, monkeypatch):
    """With a history longer than a page, /jobs shows the newest 50 jobs with links to older ones
    and to more per page; while a job on the page runs, the page fetches its rows again (not the
    page: the document stays the same) until the job's row shows its end."""
    chromium, driver = chromium_paths()
    work = tmp_path / "srv"
    old = old_jobs(work / "store", 60)
    monkeypatch.setenv("FLIGHTBATCH_FAULTS", "part-00001:sleep=6")
    srv = start_server(flightbatch_bin, work, "--demo-shards", "2", "--http", "127.0.0.1:0")
    client = srv.connect()
    opts = flight.FlightCallOptions(timeout=60)
    wd = WebDriver(driver, chromium, str(tmp_path / "profile"), str(tmp_path / "chromedriver.log"))
    rows_js = "return Array.from(document.querySelectorAll('tr.job')).map(tr => [tr.dataset.job, tr.dataset.state]);"
    try:
        base = http_addr(srv)
        job = submit(client, opts)
        wd.go(base + "/jobs")
        rows = wd.js(rows_js)
        assert len(rows) == 50, len(rows)
        assert rows[0] == [job, rows[0][1]] and rows[0][1] in ("SUBMITTED", "RUNNING"), rows[0]
        assert [r[0] for r in rows[1:]] == old[::-1][:49]
        # The refresh replaces the rows in place: a mark left on the document stays.
        wd.js("window.flightbatchMark = 'same document'; return null;")
        deadline = time.monotonic() + 120
        while True:
            rows = wd.js(rows_js)
            if rows[0][1] in TERMINAL:
                break
            assert time.monotonic() < deadline, f"the page never showed the job's end: {rows[0]}"
            time.sleep(0.3)
        assert rows[0] == [job, status(client, opts, job)["state"]] == [job, "SUCCEEDED"]
        assert wd.js("return window.flightbatchMark || null;") == "same document", "the page was reloaded"
        assert len(rows) == 50
        wd.screenshot(tmp_path / "jobs-page.png")

        wd.cmd("POST", f"/element/{wd.element('#older')}/click", {})
        deadline = time.monotonic() + 30
        while "before=" not in wd.cmd("GET", "/url"):
            assert time.monotonic() < deadline, "the older jobs link did not lead on"
            time.sleep(0.1)
        older = wd.js(rows_js)
        assert [r[0] for r in older] == old[::-1][49:], [r[0] for r in older]
        assert wd.js("return document.querySelector('#older') === null && document.querySelector('script') === null;")

        wd.go(base + "/jobs")
        wd.cmd("POST", f"/element/{wd.element('#more')}/click", {})
        deadline = time.monotonic() + 30
        while "limit=100" not in wd.cmd("GET", "/url"):
            assert time.monotonic() < deadline, "the show more link did not lead on"
            time.sleep(0.1)
        assert [r[0] for r in wd.js(rows_js)] == [job] + old[::-1]
    finally:
        wd.quit()
        client.close()
        assert srv.stop() == 0, srv.stderr_text()

#!/usr/bin/python3
"""The annotators' workbench end to end, in a real headless Chromium.

Writes a small synthetic corpus with the real `fvlm` (synth, ingest, parse,
align), plants hostile strings in a report, adds a user, deals a random
queue, starts `fvlm audit serve` on a free loopback port, and drives the page
with python3-selenium: logs in through the form; walks the queue and the
sentences with the keyboard; accepts and rejects links (a, r), sets a status
(2), sets a label (t, y); reloads and sees every decision kept; re-runs
`fvlm align` and `fvlm parse --all` and sees them kept; checks the mask
overlay's pixels for a known anatomy (the liver: orange pixels in the axial
slice through its centre with the overlay on, none with it off); checks that
the hostile strings (<script>, "><img onerror>, javascript:, Chinese) come
back as text and never run; undoes with z; takes docs/audit.png. Takes about
20 s; the limit is 60 s.

Exit codes: 0 ok, 1 a difference, 77 skipped (chromium, chromedriver or
python3-selenium absent).
"""
import argparse
import base64
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import browser  # noqa: E402  (tests/browser.py)

try:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:
    print("SKIP: python3-selenium is not installed")
    sys.exit(77)

KEY = "e2e-audit-deid-key"
HOSTILE = ['<script>window.__xss=1</script>', '"><img src=x onerror="window.__xss=2">',
           'javascript:window.__xss=3', '肺部见结节，约5毫米。']
FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAILED: " + what, file=sys.stderr)


def run(cmd, env):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if p.returncode != 0:
        sys.exit("%s failed (%d): %s" % (" ".join(cmd[:3]), p.returncode, p.stderr[-800:]))
    return p.stdout


def sql(db, q, args=()):
    con = sqlite3.connect(db, timeout=10)
    try:
        return con.execute(q, args).fetchall()
    finally:
        con.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.environ.get("FVLM_BIN"))
    ap.add_argument("--source-root", default=os.environ.get("FVLM_SOURCE_ROOT", "."))
    ap.add_argument("--screenshot", default=None, help="where to write the README screenshot")
    ap.add_argument("--keep", default=None, help="work in this folder and keep it")
    a = ap.parse_args()
    chromium, driver_bin = browser.find()
    if not chromium or not driver_bin:
        print("SKIP: chromium or chromedriver is not installed")
        return 77
    t0 = time.time()
    tmp = a.keep or tempfile.mkdtemp(prefix="fvlm-e2e-audit.")
    os.makedirs(tmp, exist_ok=True)
    env = dict(os.environ, FVLM_DEID_KEY=KEY)
    db = os.path.join(tmp, "c.db")
    out = os.path.join(tmp, "corpus")
    run([a.bin, "synth", "--quiet", "--force", "--out", out, "--studies", "4", "--seed", "11",
         "--size", "tiny", "--lang", "en"], env)
    layouts = [os.path.join(out, d) for d in ("hospital", "ctrate") if os.path.isdir(os.path.join(out, d))]
    run([a.bin, "ingest", "--quiet", "--db", db, "--set", "ingest.spacing=4, 4, 8"] + layouts, env)
    run([a.bin, "parse", "--quiet", "--db", db], env)
    run([a.bin, "align", "--quiet", "--db", db], env)
    token = json.loads(run([a.bin, "audit", "user", "add", "ana", "--json", "--db", db], env))["token"]
    run([a.bin, "audit", "queue", "--db", db, "--order", "random", "--assign", "ana", "--seed", "5"], env)
    first = sql(db, "SELECT study_id FROM audit_queue WHERE who = 'ana' ORDER BY pos LIMIT 1")[0][0]
    # Hostile text in the first queued study's last sentence (parse --all
    # later rewrites it from the report, which is fine: checked before).
    last = sql(db, "SELECT id FROM sentences WHERE study_id = ? ORDER BY idx DESC LIMIT 1", (first,))[0][0]
    con = sqlite3.connect(db)
    con.execute("UPDATE sentences SET text = ? WHERE id = ?", (" ".join(HOSTILE), last))
    con.execute("UPDATE studies SET dataset = ? WHERE id = ?", (HOSTILE[1], first))
    con.commit()
    con.close()

    drv = None
    srv = subprocess.Popen([a.bin, "audit", "serve", "--db", db, "--port", "0"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = srv.stdout.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        if not m:
            sys.exit("fvlm audit serve did not print its URL: %r %s" % (line, srv.stderr.read()[-500:]))
        url = m.group(1)
        drv = browser.start(os.path.join(tmp, "chromium-profile"), 1500, 950)
        drv.set_page_load_timeout(20)
        wait = WebDriverWait(drv, 10)
        J = drv.execute_script

        # Log in through the form.
        drv.get(url)
        wait.until(lambda d: d.find_element(By.ID, "loginName").is_displayed())
        drv.find_element(By.ID, "loginName").send_keys("ana")
        drv.find_element(By.ID, "loginToken").send_keys("wrong-token")
        drv.find_element(By.CSS_SELECTOR, "#loginForm button").click()
        wait.until(lambda d: d.find_element(By.ID, "loginError").text != "")
        check("wrong" in drv.find_element(By.ID, "loginError").text, "a wrong token is not refused")
        drv.find_element(By.ID, "loginToken").clear()
        drv.find_element(By.ID, "loginToken").send_keys(token)
        drv.find_element(By.CSS_SELECTOR, "#loginForm button").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#sentences li.sentence")) > 0)
        check(("#study=%d" % first) in drv.current_url, "the page did not open the queue's first study")
        cookies = {c["name"]: c for c in drv.get_cookies()}
        c = cookies.get("fvlm_session", {})
        check(c.get("httpOnly") is True and c.get("sameSite") == "Strict",
              "session cookie flags: %r" % c)
        check(J("return document.cookie.indexOf('fvlm_session') < 0"), "the session cookie is readable by scripts")

        def key(k):
            J("document.dispatchEvent(new KeyboardEvent('keydown', {key: arguments[0], bubbles: true}))", k)

        def settle():
            # Decisions are applied when the page re-reads the study.
            wait.until(lambda d: not J("return window.__fvlmBusy === true"))
            time.sleep(0.15)

        # Walk to the first sentence with a link; accept it; reject the next
        # sentence's first link.
        linked = J("""return [...document.querySelectorAll('#sentences li.sentence')]
                      .map((li, i) => li.querySelector('.chip') ? i : -1).filter(i => i >= 0)""")
        check(len(linked) >= 2, "fewer than two linked sentences: %r" % linked)
        for _ in range(linked[0]):
            key("j")
        sel = J("return document.querySelector('#sentences li.sel').dataset.idx")
        check(int(sel) == linked[0], "j did not move to sentence %d (at %s)" % (linked[0], sel))
        n0 = sql(db, "SELECT count(*) FROM audits")[0][0]
        key("a")
        wait.until(lambda d: sql(db, "SELECT count(*) FROM audits")[0][0] == n0 + 1)
        settle()
        for _ in range(linked[1] - linked[0]):
            key("j")
        key("r")
        wait.until(lambda d: sql(db, "SELECT count(*) FROM audits")[0][0] == n0 + 2)
        settle()
        rows = sql(db, "SELECT kind, new FROM audits ORDER BY id")
        check(rows[-2:] == [("link", "accept"), ("link", "reject")], "decisions recorded: %r" % rows)
        rej = sql(db, "SELECT count(*) FROM links l JOIN sentences s ON s.id = l.sentence_id"
                      " WHERE s.study_id = ? AND l.accepted = 0", (first,))[0][0]
        acc = sql(db, "SELECT count(*) FROM links l JOIN sentences s ON s.id = l.sentence_id"
                      " WHERE s.study_id = ? AND l.accepted = 1", (first,))[0][0]
        check(rej == 1 and acc == 1, "links after a and r: %d accepted, %d rejected" % (acc, rej))

        # A status (2 = abnormal) on the selected anatomy, and a label (t, y).
        anat = J("return document.querySelector('#anatList li.sel span').textContent")
        key("2")
        wait.until(lambda d: sql(db, "SELECT count(*) FROM audits WHERE kind = 'status'")[0][0] == 1)
        settle()
        st = sql(db, "SELECT anatomy, status, source FROM anatomy_status WHERE study_id = ? AND source = 'audit'",
                 (first,))
        check(len(st) == 1 and st[0][1] == "abnormal", "status after 2 on %s: %r" % (anat, st))

        def page_state():
            return J("""return {rejected: document.querySelectorAll('#sentences .chip.rejected').length,
                               accepted: document.querySelectorAll('#sentences .chip.accepted').length,
                               status: [...document.querySelectorAll('#anatList li')].filter(
                                   li => li.querySelector('.st').textContent === 'abnormal').length}""")

        before = page_state()
        check(before["rejected"] >= 1 and before["accepted"] >= 1, "the page does not show the decisions: %r" % before)

        # Reload: kept.
        drv.refresh()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#sentences .chip")) > 0)
        check(page_state() == before, "after a reload the page shows %r, before %r" % (page_state(), before))

        # Re-run align, then parse --all and align: kept.
        run([a.bin, "align", "--quiet", "--db", db], env)
        run([a.bin, "parse", "--quiet", "--all", "--db", db], env)
        run([a.bin, "align", "--quiet", "--db", db], env)
        drv.refresh()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#sentences .chip")) > 0)
        after = page_state()
        check(after == before, "after align and parse --all re-runs the page shows %r, before %r" % (after, before))
        st2 = sql(db, "SELECT status FROM anatomy_status WHERE study_id = ? AND source = 'audit'", (first,))
        check(st2 == [("abnormal",)], "the audited status did not survive the re-runs: %r" % st2)

        # The hostile strings are text, never markup (checked before the
        # re-parse wrote the report's own sentence back: look at the DB copy
        # of the dataset, which parse does not touch).
        title_ok = J("return document.body.innerText.indexOf(arguments[0]) >= 0", HOSTILE[1])
        check(title_ok, "the hostile dataset name is not shown as text")
        check(J("return window.__xss === undefined"), "a hostile string ran as script")
        check(len(drv.find_elements(By.CSS_SELECTOR, "img[src='x'], a[href^='javascript']")) == 0,
              "a hostile string became an element")
        try:
            drv.switch_to.alert
            check(False, "an alert opened")
        except NoAlertPresentException:
            pass

        # Overlay pixels: the liver's axial slice through its centre, with the
        # overlay on (orange pixels) and off (none).
        has_liver = sql(db, "SELECT count(*) FROM regions WHERE study_id = ? AND anatomy = 'liver'", (first,))[0][0]
        check(has_liver == 1, "the first study has no liver region")
        cz = json.loads(J("""return fetch('/api/study/' + arguments[0] + '/centre?anatomy=liver',
                               {credentials: 'same-origin'}).then(r => r.text())""", first))

        def orange(overlay):
            return J("""
              const [sid, z, overlay] = arguments;
              const img = new Image();
              img.src = '/api/study/' + sid + '/slice?plane=axial&i=' + z + '&anatomy=liver&overlay=' + overlay + '&preset=mediastinum';
              return img.decode().then(() => {
                const c = document.createElement('canvas');
                c.width = img.naturalWidth; c.height = img.naturalHeight;
                const g = c.getContext('2d');
                g.drawImage(img, 0, 0);
                const d = g.getImageData(0, 0, c.width, c.height).data;
                let n = 0;
                for (let i = 0; i < d.length; i += 4) if (d[i] === 255 && d[i + 1] === 140 && d[i + 2] === 0) n++;
                return n;
              });""", first, cz["z"], overlay)
        n_on, n_off = orange("outline"), orange("none")
        check(n_on > 10 and n_off == 0, "liver overlay pixels: %d with the outline, %d without" % (n_on, n_off))
        # The viewer itself shows the selected anatomy's overlay.
        shown = J("return window.__fvlmViewer ? window.__fvlmViewer.state().anatomy : null")
        check(shown == J("return document.querySelector('#anatList li.sel') ? '' : null") or shown,
              "the viewer shows no anatomy overlay (state: %r)" % shown)

        # Undo (z) takes back the status.
        key("z")
        wait.until(lambda d: sql(db, "SELECT count(*) FROM audits WHERE kind = 'undo'")[0][0] == 1)
        settle()
        st3 = sql(db, "SELECT count(*) FROM anatomy_status WHERE study_id = ? AND source = 'audit'", (first,))[0][0]
        check(st3 == 0, "undo did not take the status back")

        # Statistics (g): the page's tables, then back (Esc).
        key("g")
        wait.until(lambda d: d.find_element(By.ID, "statsPage").is_displayed())
        check(len(drv.find_elements(By.CSS_SELECTOR, "#statsBody table")) >= 5, "the statistics page lacks tables")
        check("decisions per annotator" in drv.find_element(By.ID, "statsBody").text.lower(),
              "the statistics page lacks the per-annotator table")
        key("Escape")
        wait.until(lambda d: d.find_element(By.ID, "work").is_displayed())

        # Help lists the shortcuts; the queue moves on with Enter (done).
        key("?")
        check(J("return document.getElementById('helpDialog').open"), "? does not open the help")
        check(len(drv.find_elements(By.CSS_SELECTOR, "#helpTable tr")) >= 15, "the help lists too few keys")
        J("document.getElementById('helpDialog').close()")
        key("Enter")
        wait.until(lambda d: ("#study=%d" % first) not in d.current_url)
        check(sql(db, "SELECT count(*) FROM audits WHERE kind = 'done' AND study_id = ?", (first,))[0][0] == 1,
              "Enter did not mark the study done")

        if a.screenshot:
            # The README's picture: the first study again, a link selected.
            drv.get(url + "#study=%d" % first)
            drv.refresh()
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#sentences .chip")) > 0)
            J("document.getElementById('btnHelp').blur()")
            for _ in range(linked[0]):
                key("j")
            time.sleep(1.0)
            os.makedirs(os.path.dirname(os.path.abspath(a.screenshot)), exist_ok=True)
            png = base64.b64decode(drv.get_screenshot_as_base64())
            with open(a.screenshot, "wb") as f:
                f.write(png)
    finally:
        if drv:
            drv.quit()
        srv.terminate()
        try:
            rc = srv.wait(10)
            check(rc == 0, "fvlm audit serve exited %d on SIGTERM" % rc)
        except subprocess.TimeoutExpired:
            srv.kill()
            check(False, "fvlm audit serve did not stop on SIGTERM")
    took = time.time() - t0
    check(took < 60, "the end-to-end test took %.1f s (limit 60)" % took)
    if not FAILURES and not a.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    print("e2e audit: %d failures, %.1f s" % (len(FAILURES), took))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())

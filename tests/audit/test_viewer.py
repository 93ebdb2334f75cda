#!/usr/bin/python3
"""The CT viewer (audit/static/viewer.js) in a real headless Chromium.

A small HTTP server serves viewer.js, viewer.css and a page that mounts the
Viewer, and answers /api/study/1/slice with PNGs that viewer_fixture renders
through audit/render.c from a fixed phantom (20 x 48 x 64 voxels of 3 x 1 x 1
mm, HU known per voxel, "lung" the block z 5..14, y 10..29, x 8..27). Checks:
the three panes load the middle slices at square-pixel sizes; a click on the
axial pane moves the coronal and sagittal panes to that voxel and the pixel
under it is that voxel's grey (the radiological flips end to end); wheel,
arrow and page keys step slices; a fast wheel is coalesced into few
requests; presets, the custom window and the overlay reach the request; the
anatomy's fill colour is where its mask is; jumpTo moves all panes; a hostile
anatomy name comes back as text, never as markup.

Exit codes: 0 ok, 1 a difference, 77 skipped (chromium, chromedriver or
python3-selenium absent).
"""
import argparse
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import browser  # noqa: E402  (tests/browser.py)

try:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
except ImportError:
    print("SKIP: python3-selenium is not installed")
    sys.exit(77)

NZ, NY, NX = 20, 48, 64
FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAILED: " + what, file=sys.stderr)


def hu(z, y, x):
    """The phantom's HU (viewer_fixture.c), C integer division."""
    return 100 * x // 63 + 40 * y // 47 - 1000 + 50 * z


def grey(h, wc, ww):
    """audit/render.h's window formula."""
    g = int((h - (wc - ww / 2)) * 255.0 / ww + 0.5)
    return max(0, min(255, g))


PAGE = b"""<!doctype html><meta charset="utf-8"><title>viewer test</title>
<link rel="stylesheet" href="/static/viewer.css">
<style>body { width: 900px; margin: 0; }</style>
<div id="v"></div><input id="other">
<script type="module">
import { Viewer } from '/static/viewer.js';
const el = document.getElementById('v');
window.events = [];
el.addEventListener('fv-slice', (e) => window.events.push(['slice', e.detail.plane, e.detail.index]));
el.addEventListener('fv-error', (e) => window.events.push(['error', e.detail.plane, e.detail.message]));
window.viewer = new Viewer();
window.viewer.mount(el);
window.ready = true;
</script>
"""


def make_handler(static_dir, fixture, log):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def reply(self, code, ctype, body):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            u = urllib.parse.urlsplit(self.path)
            if u.path == "/viewer.html":
                return self.reply(200, "text/html; charset=utf-8", PAGE)
            if u.path in ("/static/viewer.js", "/static/viewer.css"):
                name = u.path.rsplit("/", 1)[1]
                with open(os.path.join(static_dir, name), "rb") as f:
                    body = f.read()
                ctype = "text/javascript" if name.endswith(".js") else "text/css"
                return self.reply(200, ctype + "; charset=utf-8", body)
            if u.path == "/api/study/1/slice":
                q = urllib.parse.parse_qs(u.query)
                arg = lambda k, d="": q.get(k, [d])[0]
                log.append(q)
                time.sleep(0.01)  # a server's answer takes a while: coalescing shows
                p = subprocess.run([fixture, arg("plane"), arg("i"), arg("wc"), arg("ww"),
                                    arg("overlay", "outline"), arg("anatomy")],
                                   capture_output=True)
                if p.returncode == 0:
                    return self.reply(200, "image/png", p.stdout)
                code = {2: 400, 3: 404}.get(p.returncode, 500)
                body = json.dumps({"error": p.stdout.decode("utf-8", "replace").strip()})
                return self.reply(code, "application/json; charset=utf-8", body.encode())
            self.reply(404, "text/plain", b"not found")

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--source-root", default=os.environ.get("FVLM_SOURCE_ROOT", "."))
    args = ap.parse_args()
    chromium, driver_bin = browser.find()
    if not chromium or not driver_bin:
        print("SKIP: chromium or chromedriver is not installed")
        return 77

    log = []
    static_dir = os.path.join(args.source_root, "audit", "static")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                          make_handler(static_dir, args.fixture, log))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = "http://127.0.0.1:%d" % srv.server_address[1]

    profile = tempfile.mkdtemp(prefix="fvlm-viewer-chromium.")
    drv = None
    try:
        drv = browser.start(profile, 1000, 1200, ["--force-color-profile=srgb"])
        drv.set_script_timeout(10)
        run(drv, base, log)
    finally:
        if drv:
            drv.quit()
        srv.shutdown()
        shutil.rmtree(profile, ignore_errors=True)
    if FAILURES:
        print("%d checks failed" % len(FAILURES), file=sys.stderr)
        return 1
    print("viewer: all checks passed")
    return 0


def wait(drv, js, what, timeout=8.0):
    end = time.time() + timeout
    while time.time() < end:
        v = drv.execute_script(js)
        if v:
            return v
        time.sleep(0.05)
    check(False, "timed out waiting for " + what)
    return None


def shown(drv):
    """data-index of the three panes' images, once each has loaded."""
    return drv.execute_script("""
        return ['axial', 'coronal', 'sagittal'].map((p) => {
          const i = document.querySelector('.fv-' + p + ' .fv-img');
          return i.complete && i.naturalWidth && i.dataset.index !== undefined ? Number(i.dataset.index) : null;
        });""")


def settle(drv, want, what):
    """Waits until the panes show the slices want (axial, coronal, sagittal)."""
    end = time.time() + 8
    got = None
    while time.time() < end:
        got = shown(drv)
        busy = drv.execute_script("return document.querySelectorAll('.fv-loading').length")
        if got == want and not busy:
            return True
        time.sleep(0.05)
    check(False, "%s: panes show %s, expected %s" % (what, got, want))
    return False


PIXEL_JS = """
const img = document.querySelector('.fv-' + arguments[0] + ' .fv-img');
const c = document.createElement('canvas');
c.width = img.naturalWidth; c.height = img.naturalHeight;
const g = c.getContext('2d');
g.drawImage(img, 0, 0);
return Array.from(g.getImageData(arguments[1], arguments[2], 1, 1).data.slice(0, 3));
"""


def run(drv, base, log):
    drv.get(base + "/viewer.html")
    wait(drv, "return window.ready === true", "the viewer module to load")
    drv.execute_script("viewer.load({id: 1, dims: [20, 48, 64], spacing: [3, 1, 1]})")
    settle(drv, [NZ // 2, NY // 2, NX // 2], "load: the middle slices")

    # Square pixels: the coronal and sagittal images are 3 rows per 3 mm slice.
    sizes = drv.execute_script("""return ['axial', 'coronal', 'sagittal'].map((p) => {
        const i = document.querySelector('.fv-' + p + ' .fv-img'); const r = i.getBoundingClientRect();
        return [i.naturalWidth, i.naturalHeight, r.width / r.height]; });""")
    want = [[NX, NY], [NX, 3 * NZ], [NY, 3 * NZ]]
    for (w, h, aspect), (ww, wh), p in zip(sizes, want, ["axial", "coronal", "sagittal"]):
        check([w, h] == [ww, wh], "%s image is %dx%d, expected %dx%d" % (p, w, h, ww, wh))
        check(abs(aspect - ww / wh) < 0.03, "%s is shown at aspect %.3f, expected %.3f" % (p, aspect, ww / wh))

    # A click on the axial pane at voxel (y 12, x 20) moves the others there.
    img = drv.find_element(By.CSS_SELECTOR, ".fv-axial .fv-img")
    r = drv.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height];", img)
    fx, fy = (NX - 20 - 0.5) / NX, (NY - 12 - 0.5) / NY
    ActionChains(drv).move_to_element_with_offset(img, int((fx - 0.5) * r[0]), int((fy - 0.5) * r[1])).click().perform()
    settle(drv, [NZ // 2, 12, 20], "click on axial (y 12, x 20)")
    st = drv.execute_script("return viewer.state()")
    check(st["cursor"] == {"z": NZ // 2, "y": 12, "x": 20}, "cursor after the click is %s" % st["cursor"])
    # The pixel under it is that voxel's grey, in the lung window.
    px = drv.execute_script(PIXEL_JS, "axial", NX - 1 - 20, NY - 1 - 12)
    g = grey(hu(NZ // 2, 12, 20), -600, 1500)
    check(px == [g, g, g], "axial pixel of voxel (10, 12, 20) is %s, expected grey %d" % (px, g))
    # Sagittal x = 20: column y = 12 from the anterior side, row z = 10 from the top.
    px = drv.execute_script(PIXEL_JS, "sagittal", NY - 1 - 12, 3 * (NZ - 1 - 10) + 1)
    g = grey(hu(10, 12, 20), -600, 1500)
    check(px == [g, g, g], "sagittal pixel of voxel (10, 12, 20) is %s, expected grey %d" % (px, g))

    # Wheel on the axial pane: 100 px down is two slices toward inferior.
    drv.execute_script("""document.querySelector('.fv-axial .fv-frame').dispatchEvent(
        new WheelEvent('wheel', {deltaY: 100, deltaMode: 0, bubbles: true, cancelable: true}));""")
    settle(drv, [NZ // 2 - 2, 12, 20], "wheel down by 100 px on axial")
    ActionChains(drv).send_keys(Keys.ARROW_UP).perform()
    settle(drv, [NZ // 2 - 1, 12, 20], "ArrowUp on axial")
    ActionChains(drv).send_keys(Keys.PAGE_DOWN).perform()
    settle(drv, [0, 12, 20], "PageDown past the first slice (clamped)")
    ActionChains(drv).send_keys(Keys.PAGE_UP).perform()
    settle(drv, [10, 12, 20], "PageUp")
    # Keys typed into a text field are the field's, not the viewer's.
    other = drv.find_element(By.ID, "other")
    other.click()
    other.send_keys(Keys.ARROW_UP)
    time.sleep(0.2)
    check(drv.execute_script("return viewer.state().cursor.z") == 10, "ArrowUp in a text field moved the slice")
    drv.execute_script("document.activeElement.blur()")

    # A fast wheel (50 events at once) is coalesced: few requests, the last slice shown.
    n0 = len(log)
    drv.execute_script("""const f = document.querySelector('.fv-sagittal .fv-frame');
        for (let i = 0; i < 50; i++) f.dispatchEvent(new WheelEvent('wheel', {deltaY: -50, deltaMode: 0, bubbles: true, cancelable: true}));""")
    settle(drv, [10, 12, NX - 1], "50 wheel steps up on sagittal (clamped at x = 63)")
    sag = [q for q in log[n0:] if q.get("plane") == ["sagittal"]]
    # (at most 3 for the steps; x = 63 is the last slice, so nothing to prefetch)
    check(1 <= len(sag) <= 3, "50 quick wheel steps made %d sagittal requests, expected 1 to 3" % len(sag))

    # A step prefetches the next two slices that way; stepping on shows them
    # with no new request for them, and back to a slice seen costs none. The
    # coronal pane has shown y = 12 only so far.
    def coronal_requests(i):
        return sum(1 for q in log if q.get("plane") == ["coronal"] and q.get("i") == [str(i)])
    before = {i: coronal_requests(i) for i in range(8, 13)}
    check(before[11] == before[10] == before[9] == 0, "coronal slices 9..11 were asked for already")
    drv.execute_script("document.querySelector('.fv-coronal').dispatchEvent(new MouseEvent('mouseenter'))")
    ActionChains(drv).send_keys(Keys.ARROW_DOWN).perform()
    settle(drv, [10, 11, NX - 1], "ArrowDown on coronal")
    end = time.time() + 5
    while time.time() < end and not (coronal_requests(10) and coronal_requests(9)):
        time.sleep(0.05)
    check(coronal_requests(10) == 1 and coronal_requests(9) == 1 and coronal_requests(8) == 0,
          "ArrowDown to 11 did not prefetch 10 and 9 once each (requests for 10, 9, 8: %d, %d, %d)"
          % (coronal_requests(10), coronal_requests(9), coronal_requests(8)))
    ActionChains(drv).send_keys(Keys.ARROW_DOWN).perform()
    settle(drv, [10, 10, NX - 1], "ArrowDown to a prefetched slice")
    check(coronal_requests(10) == 1, "a prefetched slice was fetched again")
    ActionChains(drv).send_keys(Keys.ARROW_UP).perform()
    settle(drv, [10, 11, NX - 1], "ArrowUp back to a slice seen")
    check(coronal_requests(11) == 1, "a slice seen was fetched again (%d requests)" % coronal_requests(11))

    # Presets, custom window and overlay reach the request.
    drv.execute_script("viewer.jumpTo({z: 9, y: 19, x: 17})")
    settle(drv, [9, 19, 17], "jumpTo {z: 9, y: 19, x: 17}")
    drv.find_element(By.XPATH, "//button[text()='bone']").click()
    wait(drv, "return viewer.state().preset === 'bone'", "the bone preset")
    settle(drv, [9, 19, 17], "bone preset")
    check(log[-1].get("wc") == ["500"] and log[-1].get("ww") == ["2000"], "bone preset sent %s" % log[-1])
    ActionChains(drv).send_keys("w").perform()
    wait(drv, "return viewer.state().preset === 'lung'", "w: the next preset (lung)")
    wc = drv.find_element(By.CSS_SELECTOR, ".fv-num[aria-label^='window centre']")
    ww = drv.find_element(By.CSS_SELECTOR, ".fv-num[aria-label^='window width']")
    wc.clear(); wc.send_keys("-100")
    ww.clear(); ww.send_keys("700" + Keys.ENTER)
    wait(drv, "const s = viewer.state(); return s.wc === -100 && s.ww === 700 && s.preset === null", "a custom window")
    settle(drv, [9, 19, 17], "custom window")
    px = drv.execute_script(PIXEL_JS, "axial", NX - 1 - 17, NY - 1 - 19)
    g = grey(hu(9, 19, 17), -100, 700)
    check(px == [g, g, g], "custom window: axial pixel is %s, expected grey %d" % (px, g))

    # Right-drag: 50 px right widens by 2 x 50 x (700 / 200) HU, 20 px down
    # raises the centre by 20 x 3.5 HU.
    drv.execute_script("""const f = document.querySelector('.fv-coronal .fv-frame');
        const r = f.getBoundingClientRect(), x = r.left + 20, y = r.top + 20;
        f.dispatchEvent(new MouseEvent('mousedown', {button: 2, clientX: x, clientY: y, bubbles: true}));
        window.dispatchEvent(new MouseEvent('mousemove', {button: 2, clientX: x + 50, clientY: y + 20, bubbles: true}));
        window.dispatchEvent(new MouseEvent('mouseup', {button: 2, clientX: x + 50, clientY: y + 20, bubbles: true}));
        window.dispatchEvent(new MouseEvent('mousemove', {button: 0, clientX: x + 90, clientY: y + 90, bubbles: true}));""")
    st = drv.execute_script("return viewer.state()")
    check(st["ww"] == 1050 and st["wc"] == -30, "right-drag gave window %s/%s, expected -30/1050" % (st["wc"], st["ww"]))
    settle(drv, [9, 19, 17], "right-drag window")
    check(log[-1].get("wc") == ["-30"] and log[-1].get("ww") == ["1050"], "right-drag sent %s" % log[-1])

    # The anatomy, filled: its voxels blend the mask colour, others stay grey.
    drv.execute_script("viewer.showAnatomy('lung'); viewer.setOverlay('fill'); viewer.setPreset('lung')")
    settle(drv, [9, 19, 17], "lung, fill")
    last = log[-1]
    check(last.get("anatomy") == ["lung"] and last.get("overlay") == ["fill"], "fill request was %s" % last)
    px = drv.execute_script(PIXEL_JS, "axial", NX - 1 - 17, NY - 1 - 19)
    g = grey(hu(9, 19, 17), -600, 1500)
    blend = [(g * (256 - 96) + c * 96 + 128) >> 8 for c in (255, 140, 0)]
    check(px == blend, "filled lung pixel is %s, expected %s" % (px, blend))
    px = drv.execute_script(PIXEL_JS, "axial", NX - 1 - 40, NY - 1 - 19)
    g = grey(hu(9, 19, 40), -600, 1500)
    check(px == [g, g, g], "pixel outside the lung is %s, expected grey %d" % (px, g))
    ActionChains(drv).send_keys("o").perform()  # fill -> none
    wait(drv, "return viewer.state().overlay === 'none'", "o: the next overlay")

    # A hostile anatomy name: the server's error is shown as text.
    evil = '"><img src=x onerror="window.pwned=1">'
    drv.execute_script("window.events = []; viewer.setOverlay('outline'); viewer.showAnatomy(arguments[0])", evil)
    wait(drv, "return window.events.filter((e) => e[0] === 'error').length === 3", "three fv-error events")
    cap = drv.execute_script("return document.querySelector('.fv-axial .fv-caption').textContent")
    check("unknown anatomy" in cap and evil in cap, "the error caption is %r" % cap)
    check(drv.execute_script("return window.pwned === undefined && !document.querySelector('img[src=\"x\"]')"),
          "a hostile anatomy name became markup")
    check(drv.execute_script("return document.querySelectorAll('.fv-failed').length") == 3,
          "the panes are not marked failed")

    # A study without a volume empties the panes.
    drv.execute_script("viewer.load({study: {id: 2}, volume: null})")
    check(drv.execute_script("return document.querySelectorAll('.fv-img[hidden]').length") == 3,
          "a study without a volume still shows images")
    logs = [e for e in drv.get_log("browser") if e.get("level") == "SEVERE" and "404" not in e.get("message", "")]
    check(not logs, "the browser logged errors: %s" % logs[:3])


if __name__ == "__main__":
    sys.exit(main())

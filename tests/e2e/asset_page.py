#!/usr/bin/python3
"""tunnelmux e2e helper: writes a static page with many assets into DIR, the shape of a
development-server page (issue 16): index.html referencing N_CSS stylesheets and N_JS scripts
(default 40 + 80 = 120 assets) and, once every script ran, a fetch() of a 2 MB file.

Each script increments window.__ran; the last inline script fetches big.bin and writes
"ran=<scripts that ran> bytes=<bytes fetched>" into <div id="result"> (read with
chromium --dump-dom) and requests /done?ran=..&bytes=.. (visible in the local service's log).

Usage: asset_page.py DIR [N_CSS N_JS]
"""
import os
import sys


def main():
    root = sys.argv[1]
    n_css = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    n_js = int(sys.argv[3]) if len(sys.argv) > 3 else 80
    os.makedirs(os.path.join(root, "css"), exist_ok=True)
    os.makedirs(os.path.join(root, "js"), exist_ok=True)
    pad = "/* " + "x" * 2000 + " */\n"  # a few KiB each, like unbundled dev assets
    head, body = [], []
    for i in range(n_css):
        with open(os.path.join(root, "css", "s%d.css" % i), "w") as f:
            f.write(".c%d { margin: %dpx; }\n%s" % (i, i % 7, pad))
        head.append('<link rel="stylesheet" href="css/s%d.css">' % i)
    for i in range(n_js):
        with open(os.path.join(root, "js", "m%d.js" % i), "w") as f:
            f.write("window.__ran = (window.__ran || 0) + 1;\n%s" % pad)
        body.append('<script src="js/m%d.js"></script>' % i)
    with open(os.path.join(root, "big.bin"), "wb") as f:
        f.write(bytes((i * 7 + 3) & 0xFF for i in range(2000000)))
    final = """<script>
fetch("big.bin").then(function (r) { return r.arrayBuffer(); }).then(function (b) {
  var s = "ran=" + (window.__ran || 0) + " bytes=" + b.byteLength;
  document.getElementById("result").textContent = s;
  return fetch("done?" + s.replace(" ", "&"));
}).catch(function (e) { document.getElementById("result").textContent = "error " + e; });
</script>"""
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>assets</title>\n%s\n</head>\n"
                "<body><div id=\"result\">pending</div>\n%s\n%s\n</body></html>\n"
                % ("\n".join(head), "\n".join(body), final))
    with open(os.path.join(root, "done"), "w") as f:
        f.write("ok\n")
    print(n_css + n_js)


if __name__ == "__main__":
    main()

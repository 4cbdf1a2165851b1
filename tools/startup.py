"""Start-up time and idle memory of `textback serve`: starts it six times on one SQLite
file (the first on a fresh database, so with its migrations) and times exec -> /readyz 200.

    python3 tools/startup.py target/release/textback
"""
import subprocess, time, urllib.request, os, sys, tempfile, shutil
bin = sys.argv[1]
d = tempfile.mkdtemp()
res = []
for i in range(6):
    env = dict(os.environ, TEXTBACK_LISTEN="127.0.0.1:18777", DATABASE_URL="sqlite:" + d + "/t.db", TEXTBACK_LOG="warn")
    t = time.perf_counter()
    p = subprocess.Popen([bin, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=d)
    while True:
        try:
            if urllib.request.urlopen("http://127.0.0.1:18777/readyz", timeout=1).status == 200:
                break
        except Exception:
            time.sleep(0.001)
    res.append((time.perf_counter() - t) * 1000)
    rss = [l for l in open(f"/proc/{p.pid}/status") if l.startswith("VmRSS")][0].split()[1]
    p.terminate(); p.wait()
    print(f"run {i}: ready after {res[-1]:.1f} ms ({'fresh database' if i == 0 else 'existing database'}), idle RSS {int(rss)/1024:.1f} MiB")
shutil.rmtree(d)

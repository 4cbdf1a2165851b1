"""Start-up time and idle memory of `textback serve`: starts it RUNS times (default 6) on
one SQLite file (the first on a fresh database, so with its migrations) and times
exec -> /readyz 200; with more than six runs it prints only the summary of the starts on
the existing database (median, 95th percentile, the slowest five), since a rare slow
start is what matters there.

    python3 tools/startup.py target/release/textback [RUNS]
"""
import subprocess, time, urllib.request, os, sys, tempfile, shutil
bin = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 6
d = tempfile.mkdtemp()
res = []
for i in range(runs):
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
    if runs <= 6:
        print(f"run {i}: ready after {res[-1]:.1f} ms ({'fresh database' if i == 0 else 'existing database'}), idle RSS {int(rss)/1024:.1f} MiB")
shutil.rmtree(d)
if runs > 6:
    later = sorted(res[1:])
    print(f"fresh database: {res[0]:.1f} ms; {len(later)} starts on it: median {later[len(later) // 2]:.1f} ms, "
          f"95th percentile {later[int(len(later) * 0.95)]:.1f} ms, slowest {', '.join(f'{x:.1f}' for x in later[-5:])} ms")

#!/usr/bin/env python3
"""A second load generator for Textback, written apart from the Rust benchmark.

Sends signed Twilio `dial-status` webhooks (DialCallStatus=no-answer: one missed call each,
every caller a different number) to a running `textback serve`, over keep-alive HTTP/1.1
connections with asyncio. Python's standard library only. Reports webhooks per second, the
status codes, and the webhook latency; the texts themselves are counted by the carrier
stand-in (`carrier-standin`), which reports any number texted twice.

    python3 tools/loadgen.py --calls 20000 --concurrency 64 --token TOKEN --account-sid SID
    python3 tools/loadgen.py --calls 60000 --rate 1000 ...   # paced, for latency

Signatures follow Twilio's scheme: base64(HMAC-SHA1(auth token, URL + each POST parameter
name and value, sorted by name)), with the URL the server believes it is reached at
(`TEXTBACK_PUBLIC_URL`, given here as --public-url).
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import secrets
import time
import urllib.parse

PATH = "/webhooks/twilio/voice/dial-status"


# How many distinct callers `caller` can make: exchanges 200-999, 10,000 lines each.
CALLERS = 8_000_000


def caller(i):
    """A valid NANP number per index (exchanges 200-999), distinct per call."""
    return "+1512%03d%04d" % (200 + i // 10_000, i % 10_000)


def signature(token, url, params):
    data = url + "".join(k + v for k, v in sorted(params.items()))
    digest = hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


async def read_response(reader):
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("server closed the connection")
    status = int(status_line.split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def connection(args, host, port, signed_url, counter, started, results):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            i = counter[0]
            if i >= args.calls:
                return
            counter[0] += 1
            if args.rate:
                due = started + (i / args.rate)
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            params = {
                "CallSid": "CA" + secrets.token_hex(16),
                "AccountSid": args.account_sid,
                "From": caller(args.offset + i),
                "To": args.to,
                "CallStatus": "in-progress",
                "DialCallStatus": "no-answer",
            }
            body = urllib.parse.urlencode(params)
            request = (
                f"POST {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\n"
                f"X-Twilio-Signature: {signature(args.token, signed_url, params)}\r\n\r\n"
                f"{body}"
            ).encode()
            t0 = time.perf_counter()
            writer.write(request)
            await writer.drain()
            status = await read_response(reader)
            results.append((status, time.perf_counter() - t0))
    finally:
        writer.close()


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    return sorted_values[round((len(sorted_values) - 1) * p)]


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="where textback serve listens")
    parser.add_argument("--public-url", help="TEXTBACK_PUBLIC_URL of the server (default: --url)")
    parser.add_argument("--token", required=True, help="the server's TWILIO_AUTH_TOKEN")
    parser.add_argument("--account-sid", required=True, help="the server's TWILIO_ACCOUNT_SID")
    parser.add_argument("--to", default="+15125550100", help="the business number called")
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64, help="connections, one request in flight each")
    parser.add_argument("--rate", type=float, default=0, help="calls per second (0: as fast as possible)")
    parser.add_argument("--offset", type=int, default=0, help="first caller index, so runs do not repeat callers")
    args = parser.parse_args()
    if args.offset < 0 or args.calls < 0 or args.offset + args.calls > CALLERS:
        parser.error(f"--offset plus --calls must be at most {CALLERS:,}: the distinct callers there are")

    target = urllib.parse.urlsplit(args.url)
    host, port = target.hostname, target.port or 80
    signed_url = (args.public_url or args.url).rstrip("/") + PATH
    counter = [0]
    results = []
    started = time.perf_counter()
    try:
        await asyncio.gather(*(
            connection(args, host, port, signed_url, counter, started, results)
            for _ in range(args.concurrency)
        ))
    except OSError as e:
        raise SystemExit(f"cannot talk to {args.url}: {e}") from None
    elapsed = time.perf_counter() - started
    codes = {}
    for status, _ in results:
        codes[status] = codes.get(status, 0) + 1
    latencies = sorted(latency for _, latency in results)
    print(f"{len(results)} webhooks in {elapsed:.2f} s: {len(results) / elapsed:.0f}/s; status codes {codes}")
    print(f"latency p50 {percentile(latencies, 0.5) * 1000:.2f} ms, p99 {percentile(latencies, 0.99) * 1000:.2f} ms")
    if codes.keys() != {200}:
        raise SystemExit("FAILED: some webhooks were not answered 200")


if __name__ == "__main__":
    asyncio.run(main())

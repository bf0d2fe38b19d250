"""examples/intercept_deny_server and examples/intercept_log_server against a stock Python RPyC
client: a call the server's interceptor denies arrives in Python as PermissionError with the
server's message, the connection stays usable, allowed calls work; every served call is logged
as one JSON line.

    python3 test_intercept_examples.py PATH/TO/intercept_deny_server PATH/TO/intercept_log_server
"""

import json
import re
import signal
import subprocess
import sys
import unittest

import rpyc

DENY_SERVER = None
LOG_SERVER = None


def start(argv):
    proc = subprocess.Popen(argv + ["--host", "127.0.0.1", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    if not m:
        proc.kill()
        raise RuntimeError("server did not start: %r %r" % (line, proc.stderr.read()))
    return proc, int(m.group(1))


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    return err


class DenyTest(unittest.TestCase):
    def test_denied_call_is_a_permission_error_and_the_rest_works(self):
        proc, port = start([DENY_SERVER])
        try:
            c = rpyc.connect("127.0.0.1", port, config={"sync_request_timeout": 30})
            self.assertEqual(c.root.add(1, 2), 3)
            with self.assertRaises(PermissionError) as caught:
                c.root.reset()
            self.assertIn("'reset' is not allowed from 127.0.0.1", str(caught.exception))
            self.assertEqual(c.root.add(2, 3), 5)  # same connection
            c.close()
        finally:
            stop(proc)

    def test_allowed_peer_may_call_it(self):
        proc, port = start([DENY_SERVER, "--allow", "127.0.0.1"])
        try:
            c = rpyc.connect("127.0.0.1", port, config={"sync_request_timeout": 30})
            self.assertEqual(c.root.add(1, 2), 3)
            self.assertEqual(c.root.reset(), 1)
            c.close()
        finally:
            stop(proc)


class LogTest(unittest.TestCase):
    def test_every_call_is_one_json_line(self):
        proc, port = start([LOG_SERVER])
        try:
            c = rpyc.connect("127.0.0.1", port, config={"sync_request_timeout": 30})
            self.assertEqual(c.root.add(40, 2), 42)
            with self.assertRaises(ValueError):
                c.root.fail("on purpose")
            c.close()
        finally:
            err = stop(proc)
        lines = [json.loads(l) for l in err.splitlines() if l.startswith("{")]
        # Python's c.root.add(40, 2) is GETATTR 'add', then CALL of the bound method it got.
        get = [l for l in lines if l["handler"] == "getattr" and l["method"] == "add"]
        self.assertEqual(len(get), 1, err)
        self.assertEqual(get[0]["args"], "()")
        add = [l for l in lines if l["handler"] == "call" and l["args"] == "(40, 2)"]
        self.assertEqual(len(add), 1, err)
        self.assertTrue(add[0]["ok"])
        self.assertTrue(add[0]["peer"].startswith("127.0.0.1:"))
        self.assertTrue(add[0]["trace"].startswith("t-"))
        self.assertGreaterEqual(add[0]["seconds"], 0)
        fail = [l for l in lines if l["handler"] == "call" and l["args"] == "('on purpose')"]
        self.assertEqual(len(fail), 1, err)
        self.assertFalse(fail[0]["ok"])
        self.assertEqual(fail[0]["error_type"], "ValueError")
        self.assertEqual(fail[0]["error"], "on purpose")
        self.assertEqual(len({l["trace"] for l in lines}), len(lines))  # one trace id per call


if __name__ == "__main__":
    DENY_SERVER, LOG_SERVER = sys.argv[1], sys.argv[2]
    del sys.argv[1:3]
    unittest.main()

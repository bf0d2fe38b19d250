"""A stock Python RPyC server for the tether-client interop tests.

usage: py_server.py [--classic] [--mini6]
  default   rpyc ThreadedServer(TestService) (stock rpyc on sys.path: Debian's 5.3, or a 6.x tree
            via PYTHONPATH)
  --classic rpyc ThreadedServer(SlaveService) (classic mode)
  --mini6   shared/tools/rpyc/minirpyc.py speaking 6.x (independent peer)
Prints "PORT <n>" then serves on 127.0.0.1 until stdin closes.
"""
import os
import sys
import threading
import time

MODE = sys.argv[1] if len(sys.argv) > 1 else ""


def watch_stdin_then_exit():
    sys.stdin.read()
    os._exit(0)


class Thing:
    def __init__(self):
        self.exposed_x = 5

    def exposed_double(self, v):
        return v * 2

    def __repr__(self):
        return "<Thing x=5>"

    def __str__(self):
        return "Thing(5)"


def make_service():
    import rpyc

    class TestService(rpyc.Service):
        def exposed_add(self, a, b=0):
            return a + b

        def exposed_echo(self, x):
            return x

        def exposed_fail(self, kind, msg):
            raise {"value": ValueError, "index": IndexError, "key": KeyError, "overflow": OverflowError,
                   "runtime": RuntimeError, "type": TypeError}[kind](msg)

        def exposed_call(self, fn, *args):
            return fn(*args)

        def exposed_bounce(self, fn, n):
            return 0 if n == 0 else fn(n - 1) + 1

        def exposed_get_list(self):
            return [1, 2, 3]

        def exposed_get_dict(self):
            return {"a": 1, "b": 2}

        def exposed_gen(self, n):
            return (i * i for i in range(n))

        def exposed_thing(self):
            return Thing()

        def exposed_pid(self):
            return os.getpid()

        def exposed_big(self, n):
            return bytes(range(256)) * (n // 256)

        def exposed_slow(self, seconds):
            time.sleep(seconds)
            return "done"

        def exposed_version(self):
            return rpyc.__version__

    return TestService


def main():
    threading.Thread(target=watch_stdin_then_exit, daemon=True).start()
    if MODE == "--mini6":
        here = os.environ.get("TETHER_MINIRPYC_DIR")
        sys.path.insert(0, here)
        import socket
        import minirpyc as mr

        class Root(mr.Exposed):
            NAME_PACK = "minirpyc.TestService"

            def exposed_add(self, a, b=0):
                return a + b

            def exposed_echo(self, x):
                return x

            def exposed_fail(self, kind, msg):
                raise mr.WireError({"value": "ValueError", "key": "KeyError"}[kind], msg)

            def exposed_call(self, fn, *args):
                return fn(*args)

        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(16)
        print(f"PORT {ls.getsockname()[1]}", flush=True)
        while True:
            s, _ = ls.accept()
            c = mr.Conn(s, Root(), generation=6)
            threading.Thread(target=c.serve_forever, daemon=True).start()
    from rpyc.utils.server import ThreadedServer
    if MODE == "--classic":
        from rpyc.core.service import SlaveService
        server = ThreadedServer(SlaveService, hostname="127.0.0.1", port=0,
                                protocol_config={"allow_all_attrs": True, "allow_pickle": False})
    else:
        server = ThreadedServer(make_service(), hostname="127.0.0.1", port=0,
                                protocol_config={"sync_request_timeout": 30})
    server._listen()  # listen before announcing the port (start() would listen later)
    print(f"PORT {server.port}", flush=True)
    server.start()


if __name__ == "__main__":
    main()

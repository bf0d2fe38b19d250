"""Test-vector oracle for tether's brine tests: runs the stock RPyC brine (Debian python3-rpyc).

Usage: brine_vectors.py MODE FILE
  exprs     FILE holds one Python expression per line; for each prints
            "OK <hex of brine.dump(eval(expr))> <hex of utf-8 repr>" or "ERR <reason>".
  roundtrip FILE holds one hex encoding per line; for each prints
            "OK <hex of brine.dump(brine.load(data))> <hex of utf-8 repr>" or "ERR <reason>".
  utf8      FILE holds one hex byte string per line; prints "1" if it decodes as strict UTF-8
            (Python's bytes.decode("utf-8")), else "0".
The first output line is "RPYC <version>"; if rpyc cannot be imported the only line is
"NORPYC <reason>" and the exit status is 3.
"""
import sys

try:
    from rpyc.core import brine
    import rpyc.version
except Exception as exc:  # noqa: BLE001 - report any import failure
    print(f"NORPYC {type(exc).__name__}: {exc}")
    sys.exit(3)

NAMESPACE = {"nan": float("nan"), "inf": float("inf"), "__builtins__": __builtins__}


def hexrepr(obj):
    return repr(obj).encode("utf-8").hex()


def main():
    mode, path = sys.argv[1], sys.argv[2]
    print("RPYC " + ".".join(str(p) for p in rpyc.version.version))
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        try:
            if mode == "exprs":
                obj = eval(line, NAMESPACE)  # noqa: S307 - expressions come from our own test
                print("OK", brine.dump(obj).hex(), hexrepr(obj))
            elif mode == "roundtrip":
                obj = brine.load(bytes.fromhex(line))
                print("OK", brine.dump(obj).hex(), hexrepr(obj))
            elif mode == "utf8":
                try:
                    bytes.fromhex(line).decode("utf-8")
                    print("1")
                except UnicodeDecodeError:
                    print("0")
            else:
                print("ERR unknown mode")
        except Exception as exc:  # noqa: BLE001 - reported to the C++ test
            print("ERR", f"{type(exc).__name__}: {exc}".replace("\n", " "))


if __name__ == "__main__":
    main()

"""The Python half of the demo: a stock RPyC client (Debian's python3-rpyc) calling the C++
calc_server. usage: python3 calc_client.py PORT"""
import sys

import rpyc

port = int(sys.argv[1])
conn = rpyc.connect("127.0.0.1", port)
root = conn.root
print(f"python: root.add(1, 2) = {root.add(1, 2)}")
print(f"python: root.exposed_add(a=40, b=2) = {root.exposed_add(a=40, b=2)}")
print(f"python: root.apply(lambda x: x * 10, 4) = {root.apply(lambda x: x * 10, 4)}"
      "   (C++ called the Python lambda back)")
try:
    root.fail("something went wrong in C++")
except ValueError as e:
    print(f"python: root.fail(...) raised ValueError: {e.args[0]!r}   (a C++ std::invalid_argument)")
store = root.store
store.put("language", "C++")
store.put("peer", "Python")
print(f"python: store has {len(store)} keys: {sorted(store)}; store['peer'] = {store['peer']!r}")
try:
    root.secret
except AttributeError as e:
    print(f"python: root.secret -> AttributeError: {e.args[0]}")
conn.close()
print("python: done")

"""The Python step of the `make demo` tour: a stock RPyC client (Debian's python3-rpyc) calling
`tether serve --demo`. usage: python3 demo_client.py HOST PORT"""
import sys

import rpyc

conn = rpyc.connect(sys.argv[1], int(sys.argv[2]))
root = conn.root
print(f"python: root.add(1, 2) = {root.add(1, 2)}")
print(f"python: root.upper('tether') = {root.upper('tether')!r}")
heard = []
n = root.countdown(3, lambda i: heard.append(i))
print(f"python: root.countdown(3, callback) = {n}; the server called the Python callback with {heard}")
try:
    root.fail("raised in C++")
except ValueError as e:
    print(f"python: root.fail(...) raised ValueError: {e.args[0]}")
store = root.store
store.set("language", "C++")
store.set("peer", "Python")
print(f"python: len(store) = {len(store)}, keys = {list(store.keys())}, store.get('peer') = {store.get('peer')!r}")
stats = dict(root.stats())
print(f"python: stats()['calls.countdown'] = {stats['calls.countdown']}")
conn.close()
print("python: done")

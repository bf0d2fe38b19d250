// The attribute access policy (wire spec §12) switch by switch, as the serving side enforces
// it: each switch on and off against a root that really has an exposed, a public, a private
// and a safe-dunder name, through GETATTR, CALLATTR, SETATTR and DELATTR; DIR listing only
// what GETATTR could reach; and the values CMP, HASH, CTXEXIT, INSTANCECHECK and OLDSLICING
// answer for a Class<T> object.

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "rpc_fixture.hpp"
#include "tether/rpc/class.hpp"
#include "tether/rpc/remote_exception.hpp"

namespace tether::testing {
namespace {

using brine::Value;
using Strings = std::vector<std::string>;

Task<Any> ready(Any a) { co_return a; }

/// A root with one name of each kind the check tells apart (exposed_, rpc_ for a custom
/// prefix, public, _private, safe dunders, an unsafe dunder), data and methods alike. A name it
/// lacks fails with Python's own wording ("... has no attribute ..."), so a test can tell a
/// request the policy refused ("cannot access ...") from one it let through to a missing name.
/// SETATTR and DELATTR really change `data`.
class PolicyRoot : public Object {
 public:
  std::map<std::string, Any, std::less<>> data = {
      {"exposed_answer", Any(Value(42))}, {"rpc_answer", Any(Value(7))},
      {"public_answer", Any(Value(1))},   {"_private_answer", Any(Value(-1))},
      {"__doc__", Any(Value("doc"))},     {"__secret__", Any(Value("s"))}};

  [[nodiscard]] std::string type_name() const override { return "tests.PolicyRoot"; }
  [[nodiscard]] bool has_attr(std::string_view n) const override { return data.contains(n) || is_method(n); }
  Any get_attr(CallContext&, std::string_view name) override {
    if (auto it = data.find(name); it != data.end()) return it->second;
    if (!is_method(name)) throw missing(name);
    return method_of(this, name);
  }
  // exposed_add adds, rpc_add multiplies: which one `add` reached shows in the result.
  Task<Any> call_attr(CallContext&, std::string_view name, std::vector<Any> args, Kwargs) override {
    auto arg = [&](std::size_t i) { return args.at(i).value().as_int64(); };
    if (name == "exposed_add") return ready(Any(Value(arg(0) + arg(1))));
    if (name == "rpc_add") return ready(Any(Value(arg(0) * arg(1))));
    if (name == "twice") return ready(Any(Value(2 * arg(0))));
    if (name == "_hidden") return ready(Any(Value(-arg(0))));
    if (name == "__len__") return ready(Any(Value(3)));
    if (data.contains(name)) throw PyError("TypeError", "not callable");
    throw missing(name);
  }
  void set_attr(CallContext&, std::string_view name, Any value) override {
    data.insert_or_assign(std::string(name), std::move(value));
  }
  void del_attr(CallContext&, std::string_view name) override {
    auto it = data.find(name);
    if (it == data.end()) throw missing(name);
    data.erase(it);
  }
  [[nodiscard]] std::int64_t hash() const override { return 4242; }
  [[nodiscard]] std::vector<std::string> attr_names() const override {
    std::vector<std::string> names(std::begin(kMethods), std::end(kMethods));
    for (const auto& [k, v] : data) names.push_back(k);
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  static constexpr std::string_view kMethods[] = {"exposed_add", "rpc_add", "twice", "_hidden", "__len__"};
  static bool is_method(std::string_view n) {
    return std::find(std::begin(kMethods), std::end(kMethods), n) != std::end(kMethods);
  }
  static PyError missing(std::string_view n) {
    return PyError("AttributeError", "'PolicyRoot' object has no attribute '" + std::string(n) + "'");
  }
};

/// One request on the root: GETATTR, CALLATTR, SETATTR or DELATTR of `name`.
struct Probe {
  enum Op { kGet, kCall, kSet, kDel } op;
  std::string name;
  std::vector<Any> args;  // CALLATTR's arguments; SETATTR's value is args[0]
};
Probe get(std::string n) { return {Probe::kGet, std::move(n), {}}; }
Probe set(std::string n, std::int64_t v) { return {Probe::kSet, std::move(n), make_args(Value(v))}; }
Probe del(std::string n) { return {Probe::kDel, std::move(n), {}}; }
template <class... A>
Probe call(std::string n, A... a) {
  return {Probe::kCall, std::move(n), make_args(Value(static_cast<std::int64_t>(a))...)};
}

/// How a request ended: the result's repr ("ok" for SETATTR/DELATTR), or "<type>: <message>"
/// when the peer answered with an exception.
Task<std::string> outcome(const Netref& root, const Probe& p) {
  try {
    switch (p.op) {
      case Probe::kGet: {
        Any r = co_await root.getattr(p.name);
        co_return r.repr();
      }
      case Probe::kCall: {
        Any r = co_await root.callattr(p.name, p.args);
        co_return r.repr();
      }
      case Probe::kSet: co_await root.setattr(p.name, p.args.at(0)); co_return "ok";
      case Probe::kDel: co_await root.delattr(p.name); co_return "ok";
    }
  } catch (const RemoteError& e) {
    co_return e.type_name() + ": " + (e.args().empty() ? std::string() : e.args()[0]);
  }
  co_return "unreachable";
}

/// The outcome of each probe, in order, on one connection.
Task<Strings> probe(Connection& c, std::vector<Probe> probes) {
  Netref root = co_await c.root();
  Strings out;
  for (const Probe& p : probes) {
    std::string r = co_await outcome(root, p);
    out.push_back(std::move(r));
  }
  co_return out;
}

std::string refused(const std::string& name) { return "AttributeError: cannot access '" + name + "'"; }
std::string no_such(const std::string& name) {
  return "AttributeError: 'PolicyRoot' object has no attribute '" + name + "'";
}

class PolicyTest : public LoopTest {
 protected:
  /// A client connected to a server that serves root_ under `policy`. The client's own policy
  /// stays the default: each side enforces only its own (§12.1).
  ConnectionPair connect(AccessPolicy policy) {
    ConnectionOptions server;
    server.policy = std::move(policy);
    return connect_pair(loop_, root_, {}, server);
  }
  Strings probe_with(AccessPolicy policy, std::vector<Probe> probes) {
    auto p = connect(std::move(policy));
    return run(probe(*p.client, std::move(probes)));
  }

  std::shared_ptr<PolicyRoot> root_ = std::make_shared<PolicyRoot>();
};

// ------------------------------------------------------------------ allow_safe_attrs

TEST_F(PolicyTest, SafeAttrsOnReachesSafeDundersOnly) {
  // Default: __len__ and __doc__ are in safe_attrs; __secret__ is a dunder the object has but
  // not a safe one.
  EXPECT_EQ(probe_with({}, {call("__len__"), get("__doc__"), get("__secret__")}),
            (Strings{"3", "'doc'", refused("__secret__")}));
}

TEST_F(PolicyTest, SafeAttrsOffRefusesSafeDunders) {
  AccessPolicy p;
  p.allow_safe_attrs = false;
  EXPECT_EQ(probe_with(p, {call("__len__"), get("__doc__"), get("answer")}),
            (Strings{refused("__len__"), refused("__doc__"), "42"}));  // exposed names unaffected
}

// --------------------------------------------------------------- allow_exposed_attrs

TEST_F(PolicyTest, ExposedAttrsOnResolvesBothSpellings) {
  EXPECT_EQ(probe_with({}, {get("answer"), get("exposed_answer"), call("add", 2, 3), call("exposed_add", 2, 3)}),
            (Strings{"42", "42", "5", "5"}));
}

TEST_F(PolicyTest, ExposedAttrsOffRefusesBothSpellings) {
  AccessPolicy p;
  p.allow_exposed_attrs = false;
  EXPECT_EQ(probe_with(p, {get("answer"), get("exposed_answer"), call("add", 2, 3), call("exposed_add", 2, 3),
                           call("__len__")}),
            (Strings{refused("answer"), refused("exposed_answer"), refused("add"), refused("exposed_add"),
                     "3"}));
}

TEST_F(PolicyTest, ExposedAttrsOffNoLongerMapsNameToExposedName) {
  // With public names allowed, "exposed_answer" is reachable as an ordinary public name, but
  // "answer" passes the check as itself and is not redirected: the object has no "answer".
  AccessPolicy p;
  p.allow_exposed_attrs = false;
  p.allow_public_attrs = true;
  EXPECT_EQ(probe_with(p, {get("exposed_answer"), get("answer"), call("add", 2, 3)}),
            (Strings{"42", no_such("answer"), no_such("add")}));
}

// -------------------------------------------------------------------- exposed_prefix

TEST_F(PolicyTest, CustomExposedPrefixReplacesExposed) {
  // "rpc_": add reaches rpc_add (a product), answer rpc_answer; the exposed_ names become
  // ordinary non-public names and are refused.
  AccessPolicy p;
  p.exposed_prefix = "rpc_";
  EXPECT_EQ(probe_with(p, {call("add", 2, 3), get("answer"), get("rpc_answer"), get("exposed_answer"),
                           call("exposed_add", 2, 3)}),
            (Strings{"6", "7", "7", refused("exposed_answer"), refused("exposed_add")}));
}

TEST_F(PolicyTest, DefaultExposedPrefixDoesNotReachCustomPrefixedNames) {
  EXPECT_EQ(probe_with({}, {call("add", 2, 3), get("rpc_answer"), call("rpc_add", 2, 3)}),
            (Strings{"5", refused("rpc_answer"), refused("rpc_add")}));
}

// ---------------------------------------------------------------- allow_public_attrs

TEST_F(PolicyTest, PublicAttrsOffByDefaultRefusesPublicNames) {
  EXPECT_EQ(probe_with({}, {get("public_answer"), call("twice", 4), call("rpc_add", 2, 3)}),
            (Strings{refused("public_answer"), refused("twice"), refused("rpc_add")}));
}

TEST_F(PolicyTest, PublicAttrsOnReachesPublicButNotPrivateNames) {
  AccessPolicy p;
  p.allow_public_attrs = true;
  EXPECT_EQ(probe_with(p, {get("public_answer"), call("twice", 4), call("rpc_add", 2, 3), get("_private_answer"),
                           call("_hidden", 5), get("__secret__"), get("answer")}),
            (Strings{"1", "8", "6", refused("_private_answer"), refused("_hidden"), refused("__secret__"), "42"}));
}

// ------------------------------------------------------------------- allow_all_attrs

TEST_F(PolicyTest, AllAttrsOffByDefaultRefusesPrivateNames) {
  EXPECT_EQ(probe_with({}, {get("_private_answer"), call("_hidden", 5), get("__secret__")}),
            (Strings{refused("_private_answer"), refused("_hidden"), refused("__secret__")}));
}

TEST_F(PolicyTest, AllAttrsOnReachesEverything) {
  // Every name passes the check; a name the object lacks then fails on its own.
  AccessPolicy p;
  p.allow_all_attrs = true;
  EXPECT_EQ(probe_with(p, {get("_private_answer"), call("_hidden", 5), get("__secret__"), call("twice", 4),
                           get("answer"), get("nothing")}),
            (Strings{"-1", "-5", "'s'", "8", "42", no_such("nothing")}));
}

// --------------------------------------------------------------------- allow_getattr

TEST_F(PolicyTest, GetattrOnByDefault) {
  EXPECT_EQ(probe_with({}, {get("answer"), call("add", 2, 3), call("__len__"), get("__doc__")}),
            (Strings{"42", "5", "3", "'doc'"}));
}

TEST_F(PolicyTest, GetattrOffRefusesEvenExposedNames) {
  // The master switch also governs CALLATTR (GETATTR then CALL) and holds over allow_all_attrs.
  AccessPolicy p;
  p.allow_getattr = false;
  p.allow_all_attrs = true;
  EXPECT_EQ(probe_with(p, {get("answer"), get("exposed_answer"), call("add", 2, 3), call("__len__"),
                           get("__doc__")}),
            (Strings{refused("answer"), refused("exposed_answer"), refused("add"), refused("__len__"),
                     refused("__doc__")}));
}

// --------------------------------------------------------------------- allow_setattr

TEST_F(PolicyTest, SetattrOffByDefaultLeavesObjectUnchanged) {
  EXPECT_EQ(probe_with({}, {set("answer", 50), set("exposed_answer", 50), get("answer")}),
            (Strings{refused("answer"), refused("exposed_answer"), "42"}));
  EXPECT_EQ(root_->data.at("exposed_answer").value().as_int64(), 42);
  EXPECT_FALSE(root_->data.contains("answer"));
}

TEST_F(PolicyTest, SetattrOnWritesThroughTheNameCheck) {
  // "answer" is written to exposed_answer (the same resolution as GETATTR); names the check
  // refuses for reading stay refused for writing.
  AccessPolicy p;
  p.allow_setattr = true;
  EXPECT_EQ(probe_with(p, {set("answer", 50), get("exposed_answer"), set("public_answer", 5),
                           set("_private_answer", 5)}),
            (Strings{"ok", "50", refused("public_answer"), refused("_private_answer")}));
  EXPECT_EQ(root_->data.at("exposed_answer").value().as_int64(), 50);
  EXPECT_FALSE(root_->data.contains("answer"));
  EXPECT_EQ(root_->data.at("public_answer").value().as_int64(), 1);
  EXPECT_EQ(root_->data.at("_private_answer").value().as_int64(), -1);
}

TEST_F(PolicyTest, SetattrSwitchIsIndependentOfGetattr) {
  AccessPolicy p;
  p.allow_setattr = true;
  p.allow_getattr = false;
  EXPECT_EQ(probe_with(p, {set("answer", 9), get("answer")}), (Strings{"ok", refused("answer")}));
  EXPECT_EQ(root_->data.at("exposed_answer").value().as_int64(), 9);
}

// --------------------------------------------------------------------- allow_delattr

TEST_F(PolicyTest, DelattrOffByDefaultKeepsAttribute) {
  EXPECT_EQ(probe_with({}, {del("answer"), del("exposed_answer"), get("answer")}),
            (Strings{refused("answer"), refused("exposed_answer"), "42"}));
  EXPECT_TRUE(root_->data.contains("exposed_answer"));
}

TEST_F(PolicyTest, DelattrOnRemovesThroughTheNameCheck) {
  // "answer" deletes exposed_answer; afterwards "answer" resolves to nothing and is refused.
  AccessPolicy p;
  p.allow_delattr = true;
  EXPECT_EQ(probe_with(p, {del("answer"), get("answer"), del("_private_answer"), del("public_answer")}),
            (Strings{"ok", refused("answer"), refused("_private_answer"), refused("public_answer")}));
  EXPECT_FALSE(root_->data.contains("exposed_answer"));
  EXPECT_TRUE(root_->data.contains("_private_answer"));
  EXPECT_TRUE(root_->data.contains("public_answer"));
}

// ------------------------------------------------------------------------------- DIR

Task<Strings> dir_of_root(Connection& c) {
  Netref root = co_await c.root();
  Strings names = co_await root.dir();
  co_return names;
}

class DirTest : public PolicyTest {
 protected:
  Strings dir_with(AccessPolicy policy) {
    auto p = connect(std::move(policy));
    return run(dir_of_root(*p.client));
  }
};

TEST_F(DirTest, DefaultListsOnlyExposedAndSafeNames) {
  EXPECT_EQ(dir_with({}), (Strings{"__doc__", "__len__", "exposed_add", "exposed_answer"}));
}

TEST_F(DirTest, PublicAttrsOnAddsPublicNames) {
  AccessPolicy p;
  p.allow_public_attrs = true;
  EXPECT_EQ(dir_with(p), (Strings{"__doc__", "__len__", "exposed_add", "exposed_answer", "public_answer", "rpc_add",
                                  "rpc_answer", "twice"}));
}

TEST_F(DirTest, AllAttrsOnListsEverything) {
  AccessPolicy p;
  p.allow_all_attrs = true;
  EXPECT_EQ(dir_with(p), root_->attr_names());
  EXPECT_EQ(dir_with(p).size(), 11u);
}

TEST_F(DirTest, CustomPrefixListsItsNamesInsteadOfExposed) {
  AccessPolicy p;
  p.exposed_prefix = "rpc_";
  EXPECT_EQ(dir_with(p), (Strings{"__doc__", "__len__", "rpc_add", "rpc_answer"}));
}

TEST_F(DirTest, SafeAttrsOffHidesDunders) {
  AccessPolicy p;
  p.allow_safe_attrs = false;
  EXPECT_EQ(dir_with(p), (Strings{"exposed_add", "exposed_answer"}));
}

TEST_F(DirTest, GetattrOffListsNothing) {
  AccessPolicy p;
  p.allow_getattr = false;
  p.allow_all_attrs = true;
  EXPECT_EQ(dir_with(p), Strings{});
}

// A Class<T> object lists each member under both spellings ("get" and "exposed_get").
struct Gadget {
  std::int64_t size = 2;
};

Class<Gadget> gadget_class() {
  Class<Gadget> c("Gadget");
  c.method("get", [](const Gadget&, std::int64_t k) { return k; })
      .property("size", &Gadget::size)
      .len([](const Gadget& g) { return g.size; })
      .call([](const Gadget& g) { return g.size; });
  return c;
}

class DirClassTest : public LoopTest {
 protected:
  Strings dir_with(AccessPolicy policy) {
    ConnectionOptions server;
    server.policy = std::move(policy);
    auto p = connect_pair(loop_, gadget_class().wrap(gadget_), {}, server);
    return run(dir_of_root(*p.client));
  }
  std::shared_ptr<Gadget> gadget_ = std::make_shared<Gadget>();
};

TEST_F(DirClassTest, DefaultListsBothSpellingsAndSafeDundersButNotCall) {
  // __call__ is not a safe attr: GETATTR of it is refused, so DIR does not list it (CALL
  // itself needs no attribute and still works).
  EXPECT_EQ(dir_with({}), (Strings{"__len__", "exposed_get", "exposed_size", "get", "size"}));
}

TEST_F(DirClassTest, ExposedOffHidesShortSpellingsThatResolveToNothing) {
  // "get" would pass the check as a public name, but without exposed_ resolution the object has
  // no "get": listing it would promise a name GETATTR cannot reach.
  AccessPolicy p;
  p.allow_exposed_attrs = false;
  p.allow_public_attrs = true;
  EXPECT_EQ(dir_with(p), (Strings{"__len__", "exposed_get", "exposed_size"}));
}

TEST_F(DirClassTest, AllAttrsOnListsCallToo) {
  AccessPolicy p;
  p.allow_all_attrs = true;
  EXPECT_EQ(dir_with(p), (Strings{"__call__", "__len__", "exposed_get", "exposed_size", "get", "size"}));
}

// ------------------------------------------------- an object that checks its own access

/// RPyC's _rpyc_getattr / rpyc.restricted: the object decides. It computes "calc_<x>" for any
/// x, refuses everything else it does not hold (with its own message), and keeps what the peer
/// sets in `data`.
class SelfGuarded : public Object {
 public:
  std::map<std::string, Any, std::less<>> data = {{"plain", Any(Value("p"))}};
  int reached = 0;

  [[nodiscard]] std::string type_name() const override { return "tests.SelfGuarded"; }
  [[nodiscard]] bool checks_own_access() const noexcept override { return true; }
  Any get_attr(CallContext&, std::string_view name) override {
    ++reached;
    if (name.starts_with("calc_")) return Any(Value("computed " + std::string(name.substr(5))));
    if (auto it = data.find(name); it != data.end()) return it->second;
    throw PyError("AttributeError", "SelfGuarded keeps '" + std::string(name) + "' to itself");
  }
  void set_attr(CallContext&, std::string_view name, Any value) override {
    ++reached;
    data.insert_or_assign(std::string(name), std::move(value));
  }
  [[nodiscard]] std::vector<std::string> attr_names() const override { return {"_internal", "calc_*", "plain"}; }
};

Task<Strings> self_guarded_ops(Connection& c) {
  Netref root = co_await c.root();
  Strings out;
  const Strings names_asked = {"calc_x", "plain", "_private", "__class__"};
  for (const std::string& name : names_asked) {
    try {
      Any v = co_await root.getattr(name);
      out.push_back(v.value().as_str());
    } catch (const RemoteError& e) {
      out.push_back(e.args().empty() ? e.type_name() : e.args().front());
    }
  }
  co_await root.setattr("_set", Any(Value(5)));  // the policy's allow_setattr is off
  Any back = co_await root.getattr("_set");
  out.push_back(back.repr());
  Strings names = co_await root.dir();  // the object's own list, unfiltered
  out.push_back(fmt::format("{}", fmt::join(names, ",")));
  co_return out;
}

TEST_F(PolicyTest, AnObjectThatChecksItsOwnAccessGetsEveryNameAsSent) {
  auto guarded = std::make_shared<SelfGuarded>();
  auto p = connect_pair(loop_, guarded);
  EXPECT_EQ(run(self_guarded_ops(*p.client)),
            (Strings{"computed x", "p", "SelfGuarded keeps '_private' to itself",
                     "SelfGuarded keeps '__class__' to itself", "5", "_internal,calc_*,plain"}));
  EXPECT_EQ(guarded->reached, 6) << "every attribute request reached the object, none was refused on its way";
}

// ------------------------------------------------- CMP, HASH, CTXEXIT, INSTANCECHECK, OLDSLICING

/// Versions compare by number through __eq__ / __lt__ members (CMP calls them with the other
/// object, which comes back to the server as its own Version).
struct Version {
  std::int64_t n = 0;
};

/// A context manager counting __enter__ and __exit__, keeping what __exit__ was given.
struct Resource {
  int entered = 0;
  int exited = 0;
  std::string last_exc;
  bool last_tb_none = false;
};

struct Lab {
  std::shared_ptr<Resource> resource = std::make_shared<Resource>();
};

/// The classes of the lab's connection: a Version or a Resource a method returns is sent as one.
std::shared_ptr<ClassSet> lab_classes() {
  auto classes = std::make_shared<ClassSet>();
  classes->define<Version>("Version")
      .method("__eq__", [](const Version& a, std::shared_ptr<Version> b) { return a.n == b->n; })
      .method("__lt__", [](const Version& a, std::shared_ptr<Version> b) { return a.n < b->n; });
  classes->define<Resource>("Resource")
      .method("__enter__",
              [](const std::shared_ptr<Resource>& r) {
                ++r->entered;
                return r;
              })
      .method("__exit__", [](Resource& r, Any type, Any value, Any traceback) {
        // RPyC's shape: (exc_type, exc_value, traceback); no traceback object travels.
        ++r.exited;
        r.last_exc = value.is_none() ? "None" : value.repr();
        r.last_tb_none = traceback.is_none();
        return !type.is_none();  // suppress only a real exception
      });
  classes->define<Lab>("Lab")
      .method("version", [](const Lab&, std::int64_t n) { return std::make_shared<Version>(Version{n}); })
      .method("resource", [](const Lab& l) { return l.resource; });
  return classes;
}

class PolicyHandlerResultsTest : public LoopTest {
 protected:
  ConnectionPair connect(AccessPolicy policy = {}) {
    ConnectionOptions server;
    server.policy = std::move(policy);
    server.classes = classes_;
    return connect_pair(loop_, classes_->wrap(lab_), {}, server);
  }
  std::shared_ptr<ClassSet> classes_ = lab_classes();
  std::shared_ptr<Lab> lab_ = std::make_shared<Lab>();
};

/// "True"/"False"/"NotImplemented" as the reply's repr, for readable failures.
Task<Strings> compares(Connection& c) {
  Netref root = co_await c.root();
  Any one = co_await root.callattr("version", make_args(Value(1)));
  Any two = co_await root.callattr("version", make_args(Value(2)));
  Any one_again = co_await root.callattr("version", make_args(Value(1)));
  Netref v1 = one.netref();
  Strings out;
  auto cmp = [&](const Any& other, const char* op) { return v1.compare(other, op); };
  Any r;
  r = co_await cmp(two, "__lt__");  // 1 < 2
  out.push_back(r.repr());
  r = co_await two.netref().compare(one, "__lt__");  // 2 < 1
  out.push_back(r.repr());
  r = co_await cmp(one_again, "__eq__");  // another object, same number
  out.push_back(r.repr());
  r = co_await cmp(two, "__eq__");
  out.push_back(r.repr());
  // Ops the class does not define: object's defaults (identity for !=, NotImplemented else).
  r = co_await cmp(one_again, "__ne__");
  out.push_back(r.repr());
  r = co_await cmp(one, "__ne__");
  out.push_back(r.repr());
  r = co_await cmp(two, "__ge__");
  out.push_back(r.is_value() && r.value().is_not_implemented() ? "NotImplemented" : r.repr());
  bool eq = co_await v1.equals(one_again);
  out.push_back(eq ? "equals" : "differs");
  co_return out;
}

TEST_F(PolicyHandlerResultsTest, CmpCallsTheClassComparisons) {
  auto p = connect();
  EXPECT_EQ(run(compares(*p.client)), (Strings{"True", "False", "True", "False", "True", "False",
                                               "NotImplemented", "equals"}));
}

Task<std::vector<std::int64_t>> hashes(Connection& c) {
  Netref root = co_await c.root();
  Any one = co_await root.callattr("version", make_args(Value(1)));
  Any two = co_await root.callattr("version", make_args(Value(2)));
  std::int64_t h_root = co_await root.hash();
  std::int64_t h_root_again = co_await root.hash();
  std::int64_t h1 = co_await one.netref().hash();
  std::int64_t h2 = co_await two.netref().hash();
  co_return std::vector<std::int64_t>{h_root, h_root_again, h1, h2};
}

TEST_F(PolicyHandlerResultsTest, HashIsTheServerObjectsHash) {
  auto p = connect();
  auto h = run(hashes(*p.client));
  ASSERT_EQ(h.size(), 4u);
  // The exported root is the one object wrap() gives while it is alive: the same hash.
  EXPECT_EQ(h[0], classes_->wrap(lab_)->hash());
  EXPECT_EQ(h[1], h[0]);
  EXPECT_NE(h[2], h[3]);  // two live objects, two identities
}

Task<std::int64_t> custom_hash(Connection& c) {
  Netref root = co_await c.root();
  std::int64_t h = co_await root.hash();
  co_return h;
}

TEST_F(PolicyHandlerResultsTest, HashCarriesAnObjectsOwnHash) {
  auto p = connect_pair(loop_, std::make_shared<PolicyRoot>());
  EXPECT_EQ(run(custom_hash(*p.client)), 4242);
}

Task<Strings> context_manager(Connection& c) {
  Netref root = co_await c.root();
  Netref res = co_await root.callattr<Netref>("resource");
  Strings out;
  Any entered = co_await res.enter();  // CALLATTR __enter__: returns the resource itself
  out.push_back(entered.is_netref() && entered.netref().same_object(res) ? "self" : entered.repr());
  Any clean = co_await res.exit(Any());  // CTXEXIT(res, None)
  out.push_back(clean.repr());
  Any raised = co_await res.exit(Any(Value("boom")));  // CTXEXIT(res, exc)
  out.push_back(raised.repr());
  co_return out;
}

TEST_F(PolicyHandlerResultsTest, CtxExitReturnsWhatExitReturns) {
  auto p = connect();
  EXPECT_EQ(run(context_manager(*p.client)), (Strings{"self", "False", "True"}));
  EXPECT_EQ(lab_->resource->entered, 1);
  EXPECT_EQ(lab_->resource->exited, 2);
  EXPECT_EQ(lab_->resource->last_exc, "'boom'");  // the exception value reached __exit__
  EXPECT_TRUE(lab_->resource->last_tb_none);
}

Task<Strings> instance_checks(Connection& c) {
  Netref root = co_await c.root();
  Any own = co_await c.request(rpc::Handler::kInstanceCheck, make_args(root, Any(root.id_pack())));
  Any bogus = co_await c.request(rpc::Handler::kInstanceCheck,
                                 make_args(root, Any(Value::make_tuple(Value("x.Y"), Value(1), Value(2)))));
  Strings out;
  for (const Any* r : {&own, &bogus}) {
    out.push_back(r->is_value() && r->value().is_bool() ? r->repr() : "not a bool: " + r->repr());
  }
  co_return out;
}

TEST_F(PolicyHandlerResultsTest, InstanceCheckAnswersFalse) {
  // §6: C++ replies False (a plain bool, not None), whatever the id_pack.
  auto p = connect();
  EXPECT_EQ(run(instance_checks(*p.client)), (Strings{"False", "False"}));
}

Task<std::string> old_slicing(Connection& c) {
  Netref root = co_await c.root();
  Netref res = co_await root.callattr<Netref>("resource");
  Value no_args = Value::tuple({});
  try {
    Any r = co_await c.request(rpc::Handler::kOldSlicing, make_args(res, Value("__getitem__"), Value("__getslice__"),
                                                                    Value(0), Value(2), std::move(no_args)));
    co_return "answered " + r.repr();
  } catch (const RemoteError& e) {
    co_return e.type_name() + ": " + e.args().at(0);
  }
}

TEST_F(PolicyHandlerResultsTest, OldSlicingIsRefused) {
  // OLDSLICING has no successful result in tether: §6/§13 require refusing it (Python 2 only).
  // The reply is the documented TypeError, and the connection keeps serving.
  auto p = connect();
  EXPECT_EQ(run(old_slicing(*p.client)), "TypeError: old-style slicing is not supported");
  EXPECT_FALSE(p.server->closed());
  EXPECT_EQ(lab_->resource->entered, 0);
}

Task<Strings> checked_handlers(Connection& c) {
  Netref root = co_await c.root();
  Any one = co_await root.callattr("version", make_args(Value(1)));
  Netref res = co_await root.callattr<Netref>("resource");
  Strings out;
  auto caught = [&](const RemoteError& e) { out.push_back(e.type_name() + ": " + e.args().at(0)); };
  try {
    Any r = co_await one.netref().compare(one, "__eq__");
    out.push_back("compared " + r.repr());
  } catch (const RemoteError& e) {
    caught(e);
  }
  try {
    Any r = co_await res.exit(Any());
    out.push_back("exited " + r.repr());
  } catch (const RemoteError& e) {
    caught(e);
  }
  co_return out;
}

TEST_F(PolicyHandlerResultsTest, SafeAttrsOffRefusesCmpAndCtxExit) {
  // CMP's op and CTXEXIT's __exit__ go through the same check: safe attrs off refuses them
  // before the object is reached.
  AccessPolicy policy;
  policy.allow_safe_attrs = false;
  auto p = connect(policy);
  EXPECT_EQ(run(checked_handlers(*p.client)), (Strings{refused("__eq__"), refused("__exit__")}));
  EXPECT_EQ(lab_->resource->exited, 0);
}

}  // namespace
}  // namespace tether::testing

// ------------------------------------------------------------ RPyC CVE classes, raw requests

namespace tether::testing {
namespace {

constexpr std::string_view kDangerous[] = {"__class__",  "__dict__",      "__globals__", "__subclasses__",
                                           "__init__",   "__reduce__",    "__reduce_ex__", "__array__",
                                           "__getattribute__", "_rpyc_getattr", "__getattr__", "__setattr__",
                                           "__code__",   "__builtins__",  "__base__", "__mro__"};

bool dangerous(std::string_view n) {
  return std::find(std::begin(kDangerous), std::end(kDangerous), n) != std::end(kDangerous);
}

/// A root that really has every dangerous name (and exposed_ok) and counts each access to a
/// dangerous one: under the default policy none may reach it (the refusal is the policy's, not
/// a missing attribute).
class TrapRoot : public Object {
 public:
  int reached = 0;
  [[nodiscard]] std::string type_name() const override { return "tests.TrapRoot"; }
  [[nodiscard]] bool has_attr(std::string_view n) const override { return n == "exposed_ok" || dangerous(n); }
  Any get_attr(CallContext&, std::string_view name) override {
    if (dangerous(name)) ++reached;
    return Any(Value("reached"));
  }
  Task<Any> call_attr(CallContext&, std::string_view name, std::vector<Any>, Kwargs) override {
    if (dangerous(name)) ++reached;
    return ready(Any(Value("reached")));
  }
  void set_attr(CallContext&, std::string_view, Any) override { ++reached; }
  void del_attr(CallContext&, std::string_view) override { ++reached; }
  [[nodiscard]] std::vector<std::string> attr_names() const override {
    return {"exposed_ok", "__class__", "__dict__", "__globals__", "__subclasses__", "__init__", "__reduce__",
            "__reduce_ex__", "__array__", "__getattribute__", "_rpyc_getattr"};
  }
};

/// Every handler that takes a name, with the name as str and as UTF-8 bytes; "ok" if a request
/// succeeded, else "<type>: <message>". After each refusal the connection still answers.
Task<Strings> cve_probes(Connection& c) {
  Netref root = co_await c.root();
  Strings out;
  using rpc::Handler;
  for (std::string_view name : kDangerous) {
    for (bool as_bytes : {false, true}) {
      const Value n = as_bytes ? Value::bytes(name) : Value(std::string(name));
      const std::vector<std::pair<Handler, std::vector<Any>>> requests = {
          {Handler::kGetAttr, make_args(root, n)},
          {Handler::kSetAttr, make_args(root, n, Value(1))},
          {Handler::kDelAttr, make_args(root, n)},
          {Handler::kCallAttr, make_args(root, n, Value::make_tuple(), Value::make_tuple())},
          {Handler::kCmp, make_args(root, Value(1), n)},
      };
      for (const auto& [handler, args] : requests) {
        std::string r = "ok";
        try {
          Any a = co_await c.request(handler, args);
          (void)a;
        } catch (const RemoteError& e) {
          r = e.type_name() + ": " + (e.args().empty() ? std::string() : e.args()[0]);
        }
        out.push_back(std::string(rpc::handler_name(handler)) + " " + std::string(name) + " -> " + r);
        // the connection is still usable after each refusal
        Any ok = co_await root.getattr("ok");
        if (ok.repr() != "'reached'") out.push_back("connection unusable after " + std::string(name));
      }
    }
  }
  co_return out;
}

class CveTest : public LoopTest {
 protected:
  std::shared_ptr<TrapRoot> root_ = std::make_shared<TrapRoot>();
};

TEST_F(CveTest, EveryNamedHandlerRefusesDangerousNamesUnderTheDefaultPolicy) {
  auto p = connect_pair(loop_, root_);
  Strings got = run(cve_probes(*p.client));
  ASSERT_EQ(got.size(), std::size(kDangerous) * 2 * 5);
  for (const std::string& line : got) {
    const std::string name = line.substr(line.find(' ') + 1, line.find(" -> ") - line.find(' ') - 1);
    EXPECT_NE(line.find(" -> AttributeError: cannot access '" + name + "'"), std::string::npos) << line;
  }
  EXPECT_EQ(root_->reached, 0);
}

Task<Strings> listing_probes(Connection& c) {
  Netref root = co_await c.root();
  Strings out;
  using rpc::Handler;
  Any dir = co_await c.request(Handler::kDir, make_args(root));
  for (const Any& n : dir.items()) out.push_back("dir " + n.value().as_str());
  // BUFFITER: only __next__ of an iterator; the root is none.
  try {
    Any b = co_await c.request(Handler::kBuffIter, make_args(root, Value(3)));
    out.push_back("buffiter -> " + b.repr());
  } catch (const RemoteError& e) {
    out.push_back("buffiter -> " + e.type_name());
  }
  // CTXEXIT reaches __exit__ (a safe dunder) and nothing else.
  try {
    Any x = co_await c.request(Handler::kCtxExit, make_args(root, Any()));
    out.push_back("ctxexit -> " + x.repr());
  } catch (const RemoteError& e) {
    out.push_back("ctxexit -> " + e.type_name());
  }
  // PICKLE: never.
  for (std::int64_t proto : {-1, 0, 2, 5}) {
    try {
      Any x = co_await c.request(Handler::kPickle, make_args(root, Value(proto)));
      out.push_back("pickle -> " + x.repr());
    } catch (const RemoteError& e) {
      out.push_back("pickle -> " + e.type_name() + ": " + e.args().at(0));
    }
  }
  Any ok = co_await root.getattr("ok");
  out.push_back("after: " + ok.repr());
  co_return out;
}

TEST_F(CveTest, DirBuffIterCtxExitAndPickleReachNothingDangerous) {
  auto p = connect_pair(loop_, root_);
  Strings got = run(listing_probes(*p.client));
  EXPECT_EQ(got, (Strings{"dir exposed_ok", "buffiter -> TypeError", "ctxexit -> 'reached'",
                          "pickle -> ValueError: pickling is disabled", "pickle -> ValueError: pickling is disabled",
                          "pickle -> ValueError: pickling is disabled", "pickle -> ValueError: pickling is disabled",
                          "after: 'reached'"}));
  EXPECT_EQ(root_->reached, 0);
}

}  // namespace
}  // namespace tether::testing

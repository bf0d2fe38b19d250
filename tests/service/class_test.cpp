// Class<T>: C++ objects by reference — methods, properties, len/iter/getitem/contains/call
// reached from a tether client through Netref operations, identity, INSPECT names.

#include "tether/rpc/class.hpp"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "service_fixture.hpp"

namespace tether::testing {
namespace {

using brine::Value;

class Store {
 public:
  std::optional<std::string> get(const std::string& key) const {
    auto it = data_.find(key);
    if (it == data_.end()) return std::nullopt;
    return it->second;
  }
  void put(std::string key, std::string value) { data_[std::move(key)] = std::move(value); }
  std::int64_t size() const { return static_cast<std::int64_t>(data_.size()); }
  bool has(const std::string& key) const { return data_.count(key) > 0; }
  std::vector<std::string> keys() const {
    std::vector<std::string> k;
    for (auto& [key, v] : data_) k.push_back(key);
    return k;
  }
  std::int64_t limit() const { return limit_; }
  void set_limit(std::int64_t l) { limit_ = l; }
  std::string label = "main";

 private:
  std::map<std::string, std::string> data_;
  std::int64_t limit_ = 10;
};

/// Store's members, on the class `c`.
Class<Store> with_store_members(Class<Store> c) {
  c.method("get", &Store::get)
      .method("put", &Store::put, arg_names("key", "value"))
      .method("clone", [](const Store& s) { return std::make_shared<Store>(s); })
      .method("same",
              [](const std::shared_ptr<Store>& self, std::shared_ptr<Store> other) { return self == other; })
      .property("size", &Store::size)
      .property("limit", &Store::limit, &Store::set_limit)
      .property("label", &Store::label, &Store::label)
      .len(&Store::size)
      .iter([](const Store& s) { return s.keys(); })
      .getitem([](const Store& s, const std::string& k) { return s.get(k); })
      .contains(&Store::has)
      .call([](Store& s, std::int64_t factor) { return s.size() * factor; })
      .repr([](const Store& s) { return "<Store of " + std::to_string(s.size()) + ">"; });
  return c;
}

Service store_service(const std::shared_ptr<Store>& store) {
  Service svc("StoreService");
  with_store_members(svc.define_class<Store>("Store"));
  svc.expose_object("store", store);
  svc.expose("is_main", [store](std::shared_ptr<Store> s) { return s == store; });
  return svc;
}

Task<void> store_ops(std::uint16_t port) {
  Client c = co_await open_client(port);
  Netref store = co_await c.root.attr("store");
  EXPECT_EQ(store.type_name(), "tether.Store");
  // Both spellings reach the member (wire spec §12.2).
  Any r = co_await store.callattr("put", make_args("a", "1"));
  EXPECT_TRUE(r.is_none());
  r = co_await store.callattr("exposed_put", make_args("b", "2"));
  Kwargs kw;
  kw.emplace_back("value", Any(Value("3")));
  kw.emplace_back("key", Any(Value("c")));
  std::vector<Any> none;
  r = co_await store.callattr("put", std::move(none), kw);
  std::optional<std::string> got = co_await store.callattr<std::optional<std::string>>("get", "b");
  EXPECT_EQ(got, "2");
  std::optional<std::string> missing = co_await store.callattr<std::optional<std::string>>("get", "zz");
  EXPECT_EQ(missing, std::nullopt);

  // Properties.
  Any size = co_await store.getattr("size");
  EXPECT_EQ(size.value().as_int64(), 3);
  Any label = co_await store.getattr("exposed_label");
  EXPECT_EQ(label.value().as_str(), "main");
  // The default policy refuses SETATTR (RPyC's allow_setattr = False).
  Caught e = co_await expect_remote_error(store.setattr("limit", Value(5)));
  EXPECT_EQ(e.type, "AttributeError");

  // Python's data model through safe dunders.
  std::int64_t n = co_await store.len();
  EXPECT_EQ(n, 3);
  std::vector<Any> keys = co_await store.to_list();
  EXPECT_EQ(keys.size(), 3u);
  if (keys.size() == 3) {
    EXPECT_EQ(keys[2].value().as_str(), "c");
  }
  Netref it = co_await store.iter();
  std::optional<Any> first = co_await it.next();
  std::optional<Any> second = co_await it.next();
  std::optional<Any> third = co_await it.next();
  std::optional<Any> end = co_await it.next();
  EXPECT_TRUE(first && second && third);
  EXPECT_FALSE(end);
  std::optional<Any> after_end = co_await it.next();
  EXPECT_FALSE(after_end);
  Any item = co_await store.getitem(Value("a"));
  EXPECT_EQ(item.value().as_str(), "1");
  e = co_await expect_remote_error(store.getitem(Value("nope")));
  EXPECT_EQ(e.type, "KeyError");
  EXPECT_EQ(e.message, "nope");  // KeyError('nope'): the key itself is the argument
  bool has_a = co_await store.contains(Value("a"));
  bool has_z = co_await store.contains(Value("z"));
  EXPECT_TRUE(has_a);
  EXPECT_FALSE(has_z);
  Any called = co_await store.call(make_args(10));
  EXPECT_EQ(called.value().as_int64(), 30);
  bool truth = co_await store.truth();
  EXPECT_TRUE(truth);
  std::string repr = co_await store.repr();
  EXPECT_EQ(repr, "<Store of 3>");
  std::vector<std::string> dir = co_await store.dir();
  EXPECT_NE(std::find(dir.begin(), dir.end(), "get"), dir.end());
  EXPECT_NE(std::find(dir.begin(), dir.end(), "__len__"), dir.end());

  // Unknown and private names are refused with AttributeError.
  e = co_await expect_remote_error(store.getattr("nothing"));
  EXPECT_EQ(e.type, "AttributeError");
  e = co_await expect_remote_error(store.getattr("__class__"));
  EXPECT_EQ(e.type, "AttributeError");

  // Identity: the same C++ object is the same remote object.
  Netref again = co_await c.root.attr("store");
  EXPECT_TRUE(again.same_object(store));
  // Passed back, it arrives as the server's own object.
  bool is_main = co_await c.root.callattr<bool>("is_main", store);
  EXPECT_TRUE(is_main);
  Any copy = co_await store.callattr("clone");
  EXPECT_TRUE(copy.is_netref());
  if (copy.is_netref()) {
    EXPECT_FALSE(copy.netref().same_object(store));
    bool copy_is_main = co_await c.root.callattr<bool>("is_main", copy.netref());
    EXPECT_FALSE(copy_is_main);
    bool same = co_await store.callattr<bool>("same", store);
    bool different = co_await store.callattr<bool>("same", copy.netref());
    EXPECT_TRUE(same);
    EXPECT_FALSE(different);
    std::int64_t copy_len = co_await copy.netref().len();
    EXPECT_EQ(copy_len, 3);
  }
  // A plain value where a Store is expected.
  e = co_await expect_remote_error(c.root.callattr<bool>("is_main", 5));
  EXPECT_EQ(e.type, "TypeError");
  EXPECT_EQ(e.message, "is_main(Store) -> bool: argument 1: expected Store, got int");
  co_await close_client(c);
}

TEST_F(ServiceTest, ClassObjectsThroughNetrefOperations) {
  auto store = std::make_shared<Store>();
  Service svc = store_service(store);
  run(store_ops(start(svc)));
  EXPECT_EQ(store->size(), 3);
}

Task<void> set_property(std::uint16_t port) {
  Client c = co_await open_client(port);
  Netref store = co_await c.root.attr("store");
  co_await store.setattr("limit", Value(25));
  Any limit = co_await store.getattr("limit");
  EXPECT_EQ(limit.value().as_int64(), 25);
  co_await store.setattr("label", Value("renamed"));
  Caught e = co_await expect_remote_error(store.setattr("limit", Value("x")));
  EXPECT_EQ(e.type, "TypeError");
  EXPECT_EQ(e.message, "Store.limit: expected int, got str");
  e = co_await expect_remote_error(store.setattr("size", Value(1)));  // read-only
  EXPECT_EQ(e.type, "AttributeError");
  co_await close_client(c);
}

TEST_F(ServiceTest, PropertySettersNeedTheSetattrPolicy) {
  auto store = std::make_shared<Store>();
  Service svc = store_service(store);
  ServeOptions opts;
  opts.connection.policy.allow_setattr = true;
  run(set_property(start(svc, opts)));
  EXPECT_EQ(store->limit(), 25);
  EXPECT_EQ(store->label, "renamed");
}

TEST(ClassBinding, InspectAdvertisesOnlyDunderOperations) {
  ObjectPtr obj = with_store_members(Class<Store>("Store")).wrap(std::make_shared<Store>());
  auto names = obj->inspect_names();
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names,
            (std::vector<std::string>{"__call__", "__contains__", "__getitem__", "__iter__", "__len__"}));
  EXPECT_TRUE(obj->has_attr("exposed_get"));
  EXPECT_FALSE(obj->has_attr("get"));
  EXPECT_EQ(obj->type_name(), "tether.Store");
}

TEST(ClassBinding, SameObjectWhileExported) {
  const Class<Store> cls = with_store_members(Class<Store>("Store"));
  auto s = std::make_shared<Store>();
  ObjectPtr a = cls.wrap(s);
  ObjectPtr b = cls.wrap(s);
  EXPECT_EQ(a.get(), b.get());
  ObjectPtr other = cls.wrap(std::make_shared<Store>());
  EXPECT_NE(a.get(), other.get());
  // A set holding the class, and the object to_any made, bind to that same object.
  ClassSet set;
  set.add(cls);
  EXPECT_EQ(set.wrap(s).get(), a.get());
  EXPECT_EQ(set.bind(to_any(s).object()).get(), a.get());
  // Another class for the same type is another identity.
  EXPECT_NE(Class<Store>("Store").wrap(s).get(), a.get());
  std::weak_ptr<Object> weak = a;
  a.reset();
  b.reset();
  EXPECT_TRUE(weak.expired());  // the class holds no strong reference
}

struct Unbound {};

TEST(ClassBinding, UnboundTypesAreAUsageErrorWhenBound) {
  // to_any leaves the object unbound (a connection binds it when it sends it); a set without
  // a class for the type refuses it, and from_any still gives the C++ object back.
  auto u = std::make_shared<Unbound>();
  Any a = to_any(u);
  ASSERT_TRUE(a.is_local());
  EXPECT_EQ(a.as<std::shared_ptr<Unbound>>(), u);
  EXPECT_THROW((void)ClassSet().bind(a.object()), UsageError);
  EXPECT_THROW((void)ClassSet().wrap(u), UsageError);
  ObjectPtr plain = make_function("f", [](std::vector<Any>, Kwargs) { return Any(); });
  EXPECT_EQ(ClassSet().bind(plain), plain) << "other objects pass as they are";
}

struct Counter {
  std::int64_t limit = 0;
};

Task<void> generator_iteration(std::uint16_t port) {
  Client c = co_await open_client(port);
  Netref counter = co_await c.root.attr("counter");
  std::vector<Any> items = co_await counter.to_list(2);
  EXPECT_EQ(items.size(), 5u);
  for (std::size_t i = 0; i < items.size(); ++i)
    EXPECT_EQ(items[i].value().as_int64(), static_cast<std::int64_t>(i));
  co_await close_client(c);
}

TEST_F(ServiceTest, GeneratorIteratorsProduceItemsOnDemand) {
  Service svc("Gen");
  svc.define_class<Counter>("Counter", "demo").iter([](const Counter& c) {
    std::int64_t next = 0;
    std::int64_t limit = c.limit;
    return std::function<std::optional<std::int64_t>()>(
        [next, limit]() mutable -> std::optional<std::int64_t> {
          if (next >= limit) return std::nullopt;
          return next++;
        });
  });
  auto counter = std::make_shared<Counter>();
  counter->limit = 5;
  svc.expose_object("counter", counter);
  EXPECT_EQ(svc.classes().wrap(counter)->type_name(), "demo.Counter");
  run(generator_iteration(start(svc)));
}

struct Tally {
  explicit Tally(std::int64_t start) : n(start) {}
  std::int64_t n = 0;
};

Task<std::vector<std::string>> classes_as_objects(std::uint16_t port) {
  Client c = co_await open_client(port);
  std::vector<std::string> out;
  Netref cls = co_await c.root.attr("Tally");
  const brine::Value& cid = cls.id_pack();
  out.push_back(cid.as_tuple().at(2).repr());  // instance id 0: a class
  Any made = co_await cls.call(make_args(brine::Value(5)));
  Netref tally = made.netref();
  out.push_back(tally.type_name());
  std::int64_t n = co_await tally.callattr<std::int64_t>("value");
  out.push_back(std::to_string(n));
  // Same class id as the class: a Python peer's isinstance() answers without asking.
  out.push_back(tally.id_pack().as_tuple().at(1) == cid.as_tuple().at(1) ? "same class id" : "other class id");
  bool yes = co_await cls.instance_check(tally.id_pack());
  out.push_back(yes ? "instance" : "not an instance");
  Netref opaque = co_await c.root.attr("Opaque");
  bool no = co_await opaque.instance_check(tally.id_pack());
  out.push_back(no ? "instance" : "not an instance");
  try {
    (void)co_await opaque.call();
    out.push_back("created");
  } catch (const RemoteError& e) {
    out.push_back(e.type_name());
  }
  std::string r = co_await cls.repr();
  out.push_back(r);
  co_await close_client(c);
  co_return out;
}

TEST_F(ServiceTest, AClassIsAnObjectThePeerCanCallAndCheckInstancesAgainst) {
  Service svc("Classes");
  Class<Tally> tally = svc.define_class<Tally>("Tally", "demo");
  tally.method("value", [](const Tally& t) { return t.n; })
      .init([](std::int64_t start) { return std::make_shared<Tally>(start); }, arg_names("start"));
  svc.expose_object("Tally", tally.type_object());
  svc.expose_object("Opaque", std::make_shared<TypeObject>("demo.Opaque"));
  EXPECT_EQ(tally.type_object(), tally.type_object()) << "one identity";
  EXPECT_EQ(run(classes_as_objects(start(svc))),
            (std::vector<std::string>{"0", "demo.Tally", "5", "same class id", "instance", "not an instance",
                                      "TypeError", "<class 'demo.Tally'>"}));
}

// --- definitions belong to whoever defines them --------------------------------------------

struct Widget {
  std::string name = "w";
};

/// A service with its own class for Widget: type name "<module>.Widget", kind() -> module.
Service widget_service(const std::string& module, const std::shared_ptr<Widget>& shared) {
  Service svc(module + "Service");
  svc.define_class<Widget>("Widget", module).method("kind", [module](const Widget&) { return module; });
  svc.expose_object("shared", shared);
  svc.expose("make", []() { return std::make_shared<Widget>(); });
  svc.expose("echo", [](std::shared_ptr<Widget> w) { return w; });
  return svc;
}

/// What a client of `port` learns of the widgets: the type names and kind() of the shared one
/// and of a made one, and whether the other service's member is there.
Task<std::vector<std::string>> widgets_seen(std::uint16_t port, std::string other_member) {
  Client c = co_await open_client(port);
  std::vector<std::string> out;
  Netref shared = co_await c.root.attr("shared");
  out.push_back(shared.type_name());
  out.push_back(co_await shared.callattr<std::string>("kind"));
  Any made = co_await c.root.callattr("make");
  out.push_back(made.netref().type_name());
  out.push_back(co_await made.netref().callattr<std::string>("kind"));
  Any back = co_await c.root.callattr("echo", shared);
  out.push_back(back.netref().same_object(shared) ? "same object" : "another object");
  Caught e = co_await expect_remote_error(shared.callattr(other_member));
  out.push_back(e.type);
  co_await close_client(c);
  co_return out;
}

TEST_F(ServiceTest, TwoServicesDefiningTheSameTypeDifferentlyEachSeeTheirOwn) {
  auto shared = std::make_shared<Widget>();  // one C++ object, exposed by both services
  Service alpha = widget_service("alpha", shared);
  alpha.define_class<Widget>("Widget", "alpha")  // alpha's class again, with one more method
      .method("kind", [](const Widget&) { return std::string("alpha"); })
      .method("only_alpha", [](const Widget&) { return 1; });
  Service beta = widget_service("beta", shared);
  // A copy of alpha that redefines Widget leaves alpha's class alone.
  Service gamma = alpha;
  gamma.define_class<Widget>("Widget", "gamma").method("kind", [](const Widget&) { return std::string("gamma"); });
  EXPECT_EQ(alpha.classes().wrap(shared)->type_name(), "alpha.Widget");
  EXPECT_EQ(gamma.classes().wrap(shared)->type_name(), "gamma.Widget");

  const std::uint16_t alpha_port = start(alpha);
  Server beta_server(beta, [] {
    ServeOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    return o;
  }());
  beta_server.start();
  EXPECT_EQ(run(widgets_seen(alpha_port, "beta_only")),
            (std::vector<std::string>{"alpha.Widget", "alpha", "alpha.Widget", "alpha", "same object",
                                      "AttributeError"}));
  EXPECT_EQ(run(widgets_seen(beta_server.port(), "only_alpha")),
            (std::vector<std::string>{"beta.Widget", "beta", "beta.Widget", "beta", "same object",
                                      "AttributeError"}));
  beta_server.close();
}

Task<Caught> call_failing(std::uint16_t port, std::string name) {
  Client c = co_await open_client(port);
  Caught e = co_await expect_remote_error(c.root.callattr(std::move(name)));
  Any still = co_await c.root.callattr("get_service_name");  // the connection goes on
  (void)still;
  co_await close_client(c);
  co_return e;
}

TEST_F(ServiceTest, AServiceWithoutAClassForATypeCannotSendIt) {
  // The type has a class elsewhere (another service), not in this one.
  Service other("Other");
  other.define_class<Widget>("Widget");
  Service svc("Plain");
  svc.expose("make", []() { return std::make_shared<Widget>(); });
  const Caught e = run(call_failing(start(svc), "make"));
  EXPECT_TRUE(e.thrown);
  EXPECT_NE(e.message.find("no tether::Class binding"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("Widget"), std::string::npos) << e.message;
  // Exposing one by value fails when the service is served.
  svc.expose_object("widget", std::make_shared<Widget>());
  EXPECT_THROW((void)Server(svc, ServeOptions()), UsageError);
}

}  // namespace
}  // namespace tether::testing

// What a peer learns about tether's functions, methods, classes and services from their
// descriptive attributes: __doc__ (the C++ signature in Python notation, then the doc string
// given when it was bound), __name__, __qualname__ and __module__ — what Python's help() and
// IPython's `?` read. Also the error for a C++ type without a Class binding.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "service_fixture.hpp"
#include "tether/rpc/class.hpp"

namespace tether::testing {
namespace {

using brine::Value;

/// The text of a string attribute, "None" for None, or "<kind>: <message>" when refused.
Task<std::string> text_of(Netref obj, std::string attr) {
  std::string out;
  try {
    Any v = co_await obj.getattr(std::move(attr));
    out = v.is_value() && v.value().is_str() ? v.value().as_str() : (v.is_none() ? "None" : "?");
  } catch (const RemoteError& e) {
    out = e.type_name();
  }
  co_return out;
}

struct Shelf {
  std::vector<std::string> items;
};

Class<Shelf> define_shelf(Service& svc) {
  return svc.define_class<Shelf>("Shelf", "library")
      .doc("A shelf of named items.")
      .method("add", [](Shelf& s, std::string item) { s.items.push_back(std::move(item)); }, arg_names("item"),
              doc("Puts an item on the shelf."))
      .method("count", [](const Shelf& s) { return static_cast<std::int64_t>(s.items.size()); })
      .init([]() { return std::make_shared<Shelf>(); });
}

Service documented_service() {
  Service svc("Doc");
  const Class<Shelf> shelf = define_shelf(svc);
  svc.doc("Arithmetic for the tests.")
      .expose("add", [](std::int64_t a, std::int64_t b) { return a + b; }, arg_names("a", "b"),
              doc("Adds two integers."))
      .expose("greet", [](std::string name) { return "hello " + name; }, doc("Says hello."))
      .expose("plain", [](double x, std::optional<std::string> label) { return label ? x : -x; })
      .expose_object("shelf", shelf.wrap(std::make_shared<Shelf>()))
      .expose_object("Shelf", shelf.type_object())
      .expose_object("square", make_function_object(
                                   "square", [](std::int64_t x) { return x * x; }, arg_names("x"),
                                   doc("The square of x.")));
  return svc;
}

Task<std::vector<std::string>> read_docs(std::uint16_t port) {
  Client c = co_await open_client(port);
  std::vector<std::string> out;
  Netref add = co_await c.root.attr("add");
  out.push_back(co_await text_of(add, "__doc__"));
  out.push_back(co_await text_of(add, "__name__"));
  out.push_back(co_await text_of(add, "__qualname__"));
  out.push_back(co_await text_of(add, "__module__"));
  Netref greet = co_await c.root.attr("greet");
  out.push_back(co_await text_of(greet, "__doc__"));
  Netref plain = co_await c.root.attr("plain");
  out.push_back(co_await text_of(plain, "__doc__"));
  out.push_back(co_await text_of(c.root, "__doc__"));
  Netref shelf = co_await c.root.attr("shelf");
  Netref shelf_add = co_await shelf.attr("add");
  out.push_back(co_await text_of(shelf_add, "__doc__"));
  out.push_back(co_await text_of(shelf_add, "__name__"));
  out.push_back(co_await text_of(shelf_add, "__qualname__"));
  out.push_back(co_await text_of(shelf_add, "__module__"));
  Netref shelf_count = co_await shelf.attr("count");
  out.push_back(co_await text_of(shelf_count, "__doc__"));
  out.push_back(co_await text_of(shelf, "__doc__"));
  Netref cls = co_await c.root.attr("Shelf");
  out.push_back(co_await text_of(cls, "__doc__"));
  Netref square = co_await c.root.attr("square");
  out.push_back(co_await text_of(square, "__doc__"));
  // The descriptive attributes are all a function has: anything else is still refused.
  out.push_back(co_await text_of(add, "__globals__"));
  out.push_back(co_await text_of(add, "__code__"));
  // The doc string is a description only: the function still works.
  Any sum = co_await add.call(make_args(2, 3));
  out.push_back(std::to_string(sum.value().as_int64()));
  co_await close_client(c);
  co_return out;
}

TEST_F(ServiceTest, FunctionsMethodsClassesAndTheRootAnswerDocAndNames) {
  const std::uint16_t port = start(documented_service());
  EXPECT_EQ(run(read_docs(port)), (std::vector<std::string>{
                                      "add(a: int, b: int) -> int\n\nAdds two integers.",
                                      "add",
                                      "add",
                                      "tether",
                                      "greet(str) -> str\n\nSays hello.",
                                      "plain(float, Optional[str]) -> float",
                                      "Arithmetic for the tests.",
                                      "add(item: str) -> None\n\nPuts an item on the shelf.",
                                      "add",
                                      "Shelf.add",
                                      "library",
                                      "count() -> int",
                                      "A shelf of named items.",
                                      "A shelf of named items.",
                                      "square(x: int) -> int\n\nThe square of x.",
                                      "AttributeError",
                                      "AttributeError",
                                      "5",
                                  }));
}

Task<std::vector<std::string>> read_docs_refused(std::uint16_t port) {
  Client c = co_await open_client(port);
  std::vector<std::string> out;
  Netref add = co_await c.root.attr("add");
  out.push_back(co_await text_of(add, "__doc__"));
  out.push_back(co_await text_of(add, "__name__"));
  co_await close_client(c);
  co_return out;
}

TEST_F(ServiceTest, DescriptiveAttributesFollowTheSafeAttrsSwitch) {
  ServeOptions options;
  options.connection.policy.allow_safe_attrs = false;
  const std::uint16_t port = start(documented_service(), options);
  EXPECT_EQ(run(read_docs_refused(port)), (std::vector<std::string>{"AttributeError", "AttributeError"}));
}

Task<std::string> root_doc(std::uint16_t port) {
  Client c = co_await open_client(port);
  std::string doc = co_await text_of(c.root, "__doc__");
  co_await close_client(c);
  co_return doc;
}

TEST_F(ServiceTest, ARootWithoutDocAnswersNone) {
  // No Service::doc(): __doc__ is None, as for a Python class without a docstring.
  Service svc("Bare");
  svc.expose("f", []() { return 1; });
  EXPECT_EQ(run(root_doc(start(svc))), "None");
}

struct NeverBound {
  int x = 0;
};

TEST(ClassBinding, AnUnboundTypeIsNamedInTheError) {
  try {
    ClassSet none;
    ObjectPtr bound = none.bind(to_any(std::make_shared<NeverBound>()).object());
    FAIL() << "expected a UsageError";
  } catch (const UsageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("tether::testing::(anonymous namespace)::NeverBound"), std::string::npos) << what;
    EXPECT_NE(what.find("no tether::Class binding"), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace tether::testing

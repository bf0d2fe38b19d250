// The brine decoder (brine/codec.hpp, brine/reader.hpp) under fuzzed limits:
//  * load() either throws ProtocolError or returns a value that dumps, and loads back equal
//    (same hash, same repr, same bytes when dumped again) under the same limits;
//  * load_prefix() agrees with load() and with load() of the prefix it consumed;
//  * a Reader walking the value with a fuzzed mix of try_tuple/try_int64/try_str/read sees
//    the value load() sees, or exactly the error load() throws.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "tether/base/error.hpp"
#include "tether/brine/codec.hpp"
#include "tether/brine/reader.hpp"
#include "tether/brine/value.hpp"

namespace tf = tether::fuzz;
namespace brine = tether::brine;

namespace {

/// Fuzzed limits: each small (reachable with a short input) or the default.
brine::Limits limits_from(tf::Input& in) {
  brine::Limits l;
  const std::uint8_t which = in.u8();
  const std::uint8_t a = in.u8();
  if (which & 1) l.max_depth = a % 16;
  if (which & 2) l.max_container_len = a;
  if (which & 4) l.max_total_values = static_cast<std::size_t>(a) * 2;
  if (which & 8) l.max_total_bytes = static_cast<std::size_t>(a) * 8;
  if (which & 16) l.max_int_digits = a;
  return l;
}

/// Walks one value with the try_ methods where `choices` says so, read() otherwise.
class Walker {
 public:
  Walker(brine::Reader& r, std::uint32_t choices) : r_(r), choices_(choices) {}

  brine::Value walk(std::size_t depth) {
    const std::uint32_t c = next();
    if (c == 1) {
      if (std::optional<std::size_t> n = r_.try_tuple(depth)) {
        brine::Value::Tuple items;
        for (std::size_t i = 0; i < *n; ++i) items.push_back(walk(depth + 1));
        return brine::Value::tuple(std::move(items));
      }
    } else if (c == 2) {
      if (std::optional<std::int64_t> i = r_.try_int64()) return brine::Value(*i);
    } else if (c == 3) {
      if (std::optional<std::string_view> s = r_.try_str()) return brine::Value(*s);
    }
    return r_.read(depth);
  }

 private:
  std::uint32_t next() noexcept {
    const std::uint32_t c = choices_ & 3;
    choices_ = (choices_ >> 2) | (c << 30);  // cycles through the 16 choices
    return c;
  }
  brine::Reader& r_;
  std::uint32_t choices_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tf::Input in(data, size);
  const brine::Limits limits = limits_from(in);
  std::uint32_t choices = in.u8();
  choices |= static_cast<std::uint32_t>(in.u8()) << 8;
  choices |= choices << 16;
  const std::string_view rest = in.rest();
  const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(rest.data()), rest.size());

  std::optional<brine::Value> loaded;
  std::string load_error;
  try {
    loaded = brine::load(bytes, limits);
  } catch (const tether::ProtocolError& e) {
    load_error = e.what();
    FUZZ_CHECK(!load_error.empty());
  }

  if (loaded) {
    const brine::Value& v = *loaded;
    FUZZ_CHECK(v.is_dumpable());
    const tether::Bytes d = brine::dump(v);
    FUZZ_CHECK(brine::encoded_size(v) == d.size());
    FUZZ_CHECK(d.size() <= bytes.size());  // dump is canonical: never longer than any encoding
    brine::Value back;
    try {
      back = brine::load(d, limits);
    } catch (const tether::ProtocolError& e) {
      std::fprintf(stderr, "re-load failed: %s\n", e.what());
      FUZZ_CHECK(!"the dump of a loaded value must load under the same limits");
    }
    FUZZ_CHECK(back == v);
    FUZZ_CHECK(v == v);
    FUZZ_CHECK(back.hash() == v.hash());
    FUZZ_CHECK(back.repr() == v.repr());
    FUZZ_CHECK(brine::dump(back) == d);
    (void)v.repr(16);
  }

  // load_prefix: the same value when load succeeds; otherwise, if it finds a value, that is
  // what load() finds in the bytes it consumed (load failed on the trailing bytes).
  try {
    brine::LoadResult p = brine::load_prefix(bytes, limits);
    FUZZ_CHECK(p.consumed <= bytes.size());
    if (loaded) {
      FUZZ_CHECK(p.consumed == bytes.size());
      FUZZ_CHECK(p.value == *loaded);
    } else {
      FUZZ_CHECK(p.consumed < bytes.size());
      FUZZ_CHECK(brine::load(bytes.first(p.consumed), limits) == p.value);
    }
  } catch (const tether::ProtocolError&) {
    FUZZ_CHECK(!loaded);
  }

  // The Reader with a mix of calls: load()'s outcome, load()'s error text.
  brine::Reader r(bytes, limits);
  Walker w(r, choices);
  try {
    brine::Value v = w.walk(0);
    r.expect_end();
    if (!loaded) std::fprintf(stderr, "reader accepted what load refused: %s\n", load_error.c_str());
    FUZZ_CHECK(loaded.has_value());
    FUZZ_CHECK(v == *loaded);
  } catch (const tether::ProtocolError& e) {
    if (loaded || load_error != e.what()) {
      std::fprintf(stderr, "reader: %s\nload:   %s\n", e.what(), load_error.c_str());
    }
    FUZZ_CHECK(!loaded);
    FUZZ_CHECK(load_error == e.what());
  }
  return 0;
}

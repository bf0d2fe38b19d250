#include "stream/stream_regex.hpp"

#include <re2/re2.h>

#include <cctype>
#include <string>
#include <vector>

#include "tether/base/error.hpp"

namespace tether::detail {

namespace {

// ---------------------------------------------------------------------------- pattern model
// Just enough structure to rewrite a pattern into its prefix closure. Atoms keep their source
// text verbatim (a byte, an escape, a class, '.'); everything else is re-rendered.

struct Node {
  enum Kind { kAtom, kAssert, kGroup, kSeq, kAlt, kRepeat };
  Kind kind = kSeq;
  std::string text;  // atom / assertion source; group flags ("i", "s-m", ...)
  std::vector<Node> kids;
  int min = 0;
  int max = -1;  // -1 = unbounded
};

constexpr int kMaxDepth = 64;
constexpr std::size_t kMaxSeq = 256;
constexpr std::size_t kMaxPrefixPattern = 64 << 10;

class Parser {
 public:
  explicit Parser(std::string_view p) : p_(p) {}

  std::optional<Node> parse() {
    // Inline flags are understood only at the very start, where they cover the whole pattern.
    if (p_.substr(0, 2) == "(?") {
      std::size_t j = 2;
      while (j < p_.size() && is_flag(p_[j])) ++j;
      if (j > 2 && j < p_.size() && p_[j] == ')') {
        global_flags_ = std::string(p_.substr(2, j - 2));
        i_ = j + 1;
      }
    }
    Node root = parse_alt(0);
    if (!ok_ || i_ != p_.size()) return std::nullopt;
    return root;
  }
  [[nodiscard]] const std::string& global_flags() const noexcept { return global_flags_; }

 private:
  static bool is_flag(char c) { return c == 'i' || c == 'm' || c == 's' || c == 'U' || c == '-'; }
  bool at_end() const { return i_ >= p_.size(); }
  char peek() const { return p_[i_]; }
  void fail() { ok_ = false; }

  Node parse_alt(int depth) {
    Node alt;
    alt.kind = Node::kAlt;
    alt.kids.push_back(parse_seq(depth));
    while (ok_ && !at_end() && peek() == '|') {
      ++i_;
      alt.kids.push_back(parse_seq(depth));
    }
    if (alt.kids.size() == 1) return std::move(alt.kids.front());
    return alt;
  }

  Node parse_seq(int depth) {
    Node seq;
    seq.kind = Node::kSeq;
    while (ok_ && !at_end() && peek() != '|' && peek() != ')') {
      Node item;
      if (!parse_item(item, depth)) {
        fail();
        break;
      }
      if (item.kind == Node::kSeq) {  // \Q...\E expands to several atoms
        for (auto& k : item.kids) seq.kids.push_back(std::move(k));
      } else {
        parse_quantifier(item);
        seq.kids.push_back(std::move(item));
      }
      if (seq.kids.size() > kMaxSeq) fail();
    }
    return seq;
  }

  bool parse_item(Node& out, int depth) {
    const char c = peek();
    if (c == '(') return parse_group(out, depth);
    if (c == '[') return parse_class(out);
    if (c == '\\') return parse_escape(out);
    if (c == '^' || c == '$') {
      out.kind = Node::kAssert;
      out.text = std::string(1, c);
      ++i_;
      return true;
    }
    if (c == '*' || c == '+' || c == '?') return false;  // a quantifier with nothing before it
    if (c == '{' && repeat_at(i_)) return false;
    out.kind = Node::kAtom;
    out.text = (c == '{' || c == '}' || c == ']') ? std::string("\\") + c : std::string(1, c);
    ++i_;
    return true;
  }

  bool parse_group(Node& out, int depth) {
    if (depth >= kMaxDepth) return false;
    std::string flags;
    if (p_.substr(i_, 2) == "(?") {
      std::size_t j = i_ + 2;
      if (j < p_.size() && (p_[j] == 'P' || p_[j] == '<')) {  // (?P<name>...) or (?<name>...)
        const std::size_t close = p_.find('>', j);
        if (close == std::string_view::npos) return false;
        i_ = close + 1;
      } else {
        while (j < p_.size() && is_flag(p_[j])) ++j;
        if (j >= p_.size() || p_[j] != ':') return false;  // a flag change mid-pattern
        flags = std::string(p_.substr(i_ + 2, j - i_ - 2));
        i_ = j + 1;
      }
    } else {
      ++i_;
    }
    Node inner = parse_alt(depth + 1);
    if (!ok_ || at_end() || peek() != ')') return false;
    ++i_;
    out.kind = Node::kGroup;
    out.text = std::move(flags);
    out.kids.push_back(std::move(inner));
    return true;
  }

  bool parse_class(Node& out) {
    std::size_t j = i_ + 1;
    if (j < p_.size() && p_[j] == '^') ++j;
    if (j < p_.size() && p_[j] == ']') ++j;  // a leading ']' is literal
    while (j < p_.size() && p_[j] != ']') {
      if (p_[j] == '\\') {
        j += 2;
        if (j - 1 < p_.size() && (p_[j - 1] == 'p' || p_[j - 1] == 'P' || p_[j - 1] == 'x') &&
            j < p_.size() && p_[j] == '{') {
          const std::size_t close = p_.find('}', j);
          if (close == std::string_view::npos) return false;
          j = close + 1;
        }
        continue;
      }
      if (p_[j] == '[' && j + 1 < p_.size() && p_[j + 1] == ':') {
        const std::size_t close = p_.find(":]", j + 2);
        if (close == std::string_view::npos) return false;
        j = close + 2;
        continue;
      }
      ++j;
    }
    if (j >= p_.size()) return false;
    out.kind = Node::kAtom;
    out.text = std::string(p_.substr(i_, j + 1 - i_));
    i_ = j + 1;
    return true;
  }

  bool parse_escape(Node& out) {
    if (i_ + 1 >= p_.size()) return false;
    const char e = p_[i_ + 1];
    std::size_t end = i_ + 2;
    out.kind = Node::kAtom;
    switch (e) {
      case 'Q': {  // literal text up to \E: one atom per byte
        std::size_t close = p_.find("\\E", i_ + 2);
        const std::size_t stop = close == std::string_view::npos ? p_.size() : close;
        out.kind = Node::kSeq;
        for (std::size_t k = i_ + 2; k < stop; ++k) {
          Node a;
          a.kind = Node::kAtom;
          a.text = re2::RE2::QuoteMeta(re2::StringPiece(p_.data() + k, 1));
          out.kids.push_back(std::move(a));
        }
        i_ = close == std::string_view::npos ? p_.size() : close + 2;
        return true;
      }
      case 'E':
        return false;
      case 'b':
      case 'B':
      case 'A':
      case 'z':
        out.kind = Node::kAssert;
        break;
      case 'x':
      case 'p':
      case 'P':
        if (end < p_.size() && p_[end] == '{') {
          const std::size_t close = p_.find('}', end);
          if (close == std::string_view::npos) return false;
          end = close + 1;
        } else if (e == 'x') {
          end = std::min(p_.size(), end + 2);
        } else {
          end = std::min(p_.size(), end + 1);
        }
        break;
      default:
        if (e >= '0' && e <= '7') {
          while (end < p_.size() && end < i_ + 4 && p_[end] >= '0' && p_[end] <= '7') ++end;
        }
        break;
    }
    out.text = std::string(p_.substr(i_, end - i_));
    i_ = end;
    return true;
  }

  /// Whether a {n}, {n,} or {n,m} repeat starts at k.
  bool repeat_at(std::size_t k, int* mn = nullptr, int* mx = nullptr, std::size_t* len = nullptr) const {
    if (k >= p_.size() || p_[k] != '{') return false;
    std::size_t j = k + 1;
    const std::size_t d0 = j;
    while (j < p_.size() && std::isdigit(static_cast<unsigned char>(p_[j]))) ++j;
    if (j == d0 || j - d0 > 4) return false;
    const int a = std::stoi(std::string(p_.substr(d0, j - d0)));
    int b = a;
    if (j < p_.size() && p_[j] == ',') {
      ++j;
      const std::size_t d1 = j;
      while (j < p_.size() && std::isdigit(static_cast<unsigned char>(p_[j]))) ++j;
      if (j - d1 > 4) return false;
      b = (j == d1) ? -1 : std::stoi(std::string(p_.substr(d1, j - d1)));
    }
    if (j >= p_.size() || p_[j] != '}') return false;
    if (mn) *mn = a;
    if (mx) *mx = b;
    if (len) *len = j + 1 - k;
    return true;
  }

  void parse_quantifier(Node& item) {
    if (at_end()) return;
    int mn = 0;
    int mx = -1;
    std::size_t len = 1;
    const char c = peek();
    if (c == '*') {
      mn = 0, mx = -1;
    } else if (c == '+') {
      mn = 1, mx = -1;
    } else if (c == '?') {
      mn = 0, mx = 1;
    } else if (!repeat_at(i_, &mn, &mx, &len)) {
      return;
    }
    i_ += len;
    if (!at_end() && peek() == '?') ++i_;  // non-greedy: same language
    Node rep;
    rep.kind = Node::kRepeat;
    rep.min = mn;
    rep.max = mx;
    rep.kids.push_back(std::move(item));
    item = std::move(rep);
    if (!at_end() && (peek() == '*' || peek() == '+' || peek() == '?' || repeat_at(i_))) fail();
  }

  std::string_view p_;
  std::size_t i_ = 0;
  bool ok_ = true;
  std::string global_flags_;
};

// ------------------------------------------------------------------------------- rendering

std::string render(const Node& n);

std::string render_group_open(const std::string& flags) {
  return flags.empty() ? std::string("(?:") : "(?" + flags + ":";
}

std::string render(const Node& n) {
  switch (n.kind) {
    case Node::kAtom:
    case Node::kAssert:
      return n.text;
    case Node::kGroup:
      return render_group_open(n.text) + render(n.kids.front()) + ")";
    case Node::kSeq: {
      std::string s;
      for (const auto& k : n.kids) s += render(k);
      return s;
    }
    case Node::kAlt: {
      std::string s = "(?:";
      for (std::size_t i = 0; i < n.kids.size(); ++i) {
        if (i) s += '|';
        s += render(n.kids[i]);
      }
      return s + ")";
    }
    case Node::kRepeat: {
      std::string s = "(?:" + render(n.kids.front()) + ")";
      if (n.max < 0) return s + "{" + std::to_string(n.min) + ",}";
      return s + "{" + std::to_string(n.min) + "," + std::to_string(n.max) + "}";
    }
  }
  return {};
}

/// A regex for (a superset of) the prefixes of the strings n matches; always matches "".
std::string prefix(const Node& n);

std::string prefix_seq(const std::vector<Node>& items, std::size_t k) {
  if (k == items.size()) return {};
  const Node& x = items[k];
  const std::string rest = prefix_seq(items, k + 1);
  if (x.kind == Node::kAtom || x.kind == Node::kAssert) {
    // P(x rest) = "" | x P(rest), as P(x) = "" | x and P(rest) holds "".
    return "(?:" + x.text + rest + ")?";
  }
  return "(?:" + prefix(x) + "|" + render(x) + rest + ")";
}

std::string prefix(const Node& n) {
  switch (n.kind) {
    case Node::kAtom:
      return "(?:" + n.text + ")?";
    case Node::kAssert:
      return {};  // zero-width: checked only once something follows it
    case Node::kGroup:
      return render_group_open(n.text) + prefix(n.kids.front()) + ")";
    case Node::kSeq:
      return prefix_seq(n.kids, 0);
    case Node::kAlt: {
      std::string s = "(?:";
      for (std::size_t i = 0; i < n.kids.size(); ++i) {
        if (i) s += '|';
        s += prefix(n.kids[i]);
      }
      return s + ")";
    }
    case Node::kRepeat: {
      const Node& c = n.kids.front();
      if (n.max == 0) return {};
      if (n.max == 1) return prefix(c);
      // Prefixes of c^k (k <= max) are c^j P(c) for j < max; the minimum is dropped (superset).
      std::string s = "(?:" + render(c) + ")";
      s += (n.max < 0) ? std::string("*") : "{0," + std::to_string(n.max - 1) + "}";
      return s + prefix(c);
    }
  }
  return {};
}

re2::RE2::Options regex_options() {
  re2::RE2::Options o;
  o.set_encoding(re2::RE2::Options::EncodingLatin1);
  o.set_log_errors(false);
  o.set_max_mem(8 << 20);
  return o;
}

std::size_t offset_in(std::string_view text, const re2::StringPiece& m) {
  if (!m.data() || !text.data()) return 0;
  return static_cast<std::size_t>(m.data() - text.data());
}

}  // namespace

std::optional<std::string> regex_prefix_closure(std::string_view pattern) {
  Parser parser(pattern);
  std::optional<Node> root = parser.parse();
  if (!root) return std::nullopt;
  std::string out;
  if (!parser.global_flags().empty()) out = "(?" + parser.global_flags() + ")";
  out += "(?:" + prefix(*root) + ")";
  if (out.size() > kMaxPrefixPattern) return std::nullopt;
  return out;
}

StreamRegex::StreamRegex(std::string_view pattern) : pattern_(pattern) {
  const auto opts = regex_options();
  re_ = std::make_unique<re2::RE2>(re2::StringPiece(pattern_.data(), pattern_.size()), opts);
  if (!re_->ok()) throw UsageError("invalid regex '" + pattern_ + "': " + re_->error());
  if (auto p = regex_prefix_closure(pattern_)) {
    auto pre = std::make_unique<re2::RE2>(*p + "\\z", opts);
    if (pre->ok()) prefix_ = std::move(pre);
  }
}

StreamRegex::~StreamRegex() = default;

StreamRegex::Step StreamRegex::search(std::string_view text, std::size_t from) const {
  Step step;
  step.resume = from;
  if (from > text.size()) return step;
  const re2::StringPiece t(text.data(), text.size());
  re2::StringPiece m;
  if (re_->Match(t, from, text.size(), re2::RE2::UNANCHORED, &m, 1)) {
    step.found = true;
    step.match_end = offset_in(text, m) + m.size();
    return step;
  }
  if (prefix_) {
    re2::StringPiece pm;
    if (prefix_->Match(t, from, text.size(), re2::RE2::UNANCHORED, &pm, 1)) {
      step.resume = text.empty() ? 0 : offset_in(text, pm);
    } else {
      step.resume = text.size();  // no start can ever match (an unsatisfiable pattern)
    }
  }
  return step;
}

}  // namespace tether::detail

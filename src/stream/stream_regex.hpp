#pragma once
// StreamRegex: RE2 search over a growing buffer that resumes instead of rescanning.
//
// Resume rule. After a search of buffer[from, L) finds no match, every start position s < L
// whose suffix buffer[s, L) cannot be the beginning of a match is dead for good: more data
// cannot make a match start there. The next search starts at the earliest live start. To find
// it, the pattern R is rewritten into its prefix closure P(R) (a regex matching every prefix of
// every string R matches; built from the pattern syntax, over-approximating where exactness
// would be costly: zero-width assertions, repeat minimums and so on, which is safe because a
// larger P only keeps more starts alive), and the leftmost match of P(R)\z in buffer[from, L)
// gives that start. Both searches are RE2 (linear time), run over the bytes still live only.
// Patterns the rewriter does not understand (inline flag changes after the start, very long
// sequences) fall back to resuming at the previous start (correct, not incremental).
//
// Patterns are byte-oriented (RE2 Latin-1 mode): '.' is one byte, as with tornado's bytes
// regexes. The buffered bytes are the text, so ^ / \A match at the start of the unread data.

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace re2 {
class RE2;
}

namespace tether::detail {

class StreamRegex {
 public:
  /// Throws UsageError if `pattern` does not compile.
  explicit StreamRegex(std::string_view pattern);
  ~StreamRegex();
  StreamRegex(const StreamRegex&) = delete;
  StreamRegex& operator=(const StreamRegex&) = delete;

  struct Step {
    bool found = false;
    std::size_t match_end = 0;  // offset just past the leftmost match (when found)
    std::size_t resume = 0;     // earliest offset where a match could still start (else)
  };
  /// Leftmost match of the pattern starting at or after `from` in `text` (the whole text is
  /// the context for ^, \b and the like).
  [[nodiscard]] Step search(std::string_view text, std::size_t from) const;

  [[nodiscard]] const std::string& pattern() const noexcept { return pattern_; }
  /// Whether the prefix-closure rewrite applies (searches resume incrementally).
  [[nodiscard]] bool incremental() const noexcept { return prefix_ != nullptr; }

 private:
  std::string pattern_;
  std::unique_ptr<re2::RE2> re_;
  std::unique_ptr<re2::RE2> prefix_;
};

/// The prefix-closure pattern for `pattern` (without the trailing \z), or nullopt when the
/// rewriter does not support the syntax. Exposed for tests.
std::optional<std::string> regex_prefix_closure(std::string_view pattern);

}  // namespace tether::detail

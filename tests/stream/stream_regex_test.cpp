// StreamRegex: the incremental search must find exactly what a rescan of the whole buffer at
// every arrival finds, while resuming past dead bytes.
#include "stream/stream_regex.hpp"

#include <gtest/gtest.h>
#include <re2/re2.h>

#include <random>
#include <string>
#include <vector>

#include "tether/base/error.hpp"

namespace tether::detail {
namespace {

struct Outcome {
  bool found = false;
  std::size_t end = 0;       // match end
  std::size_t at_chunk = 0;  // number of chunks delivered when found
  bool operator==(const Outcome&) const = default;
};

re2::RE2::Options latin1() {
  re2::RE2::Options o;
  o.set_encoding(re2::RE2::Options::EncodingLatin1);
  o.set_log_errors(false);
  return o;
}

// The reference: after each chunk, search the whole buffer from 0.
Outcome rescan(const std::string& pattern, const std::vector<std::string>& chunks) {
  re2::RE2 re(pattern, latin1());
  std::string buf;
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    buf += chunks[i];
    re2::StringPiece m;
    if (re.Match(buf, 0, buf.size(), re2::RE2::UNANCHORED, &m, 1)) {
      return {true, static_cast<std::size_t>(m.data() - buf.data()) + m.size(), i + 1};
    }
  }
  return {};
}

Outcome incremental(const StreamRegex& re, const std::vector<std::string>& chunks, std::size_t* final_resume) {
  std::string buf;
  std::size_t from = 0;
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    buf += chunks[i];
    const auto step = re.search(buf, from);
    if (step.found) return {true, step.match_end, i + 1};
    EXPECT_GE(step.resume, from) << "resume went backwards";
    EXPECT_LE(step.resume, buf.size());
    from = step.resume;
  }
  if (final_resume) *final_resume = from;
  return {};
}

const std::vector<std::string>& patterns() {
  static const std::vector<std::string> p = {
      "\r\n\r\n",        "\r?\n\r?\n",     "a+b",           "ab|ba",         "(ab|ba)+\n",
      "a.{2,4}b",        "a.b",            "[ab]{3}\n",     "(?i)AB+",       "a(?:b|\n)*a",
      "x?",              "^a",             "b$",            "\\bab\\b",      "(?P<n>a|b)c",
      "[^a]{2}",         "a{3}",           "a{2,}b",        "(a|b)*abb",     "\\Qa.b\\E",
      "(?s:a.*b)",       "a[\\n]b",        "\\x61\\x62",    "[[:alpha:]]b{1,3}c", "(?i:a)(?:b)?\\n",
      "ba*?c",           "\\Aab",          "ab\\z",         "(a(b(c|a)))",   "[ab]\\B[ab]",
  };
  return p;
}

TEST(StreamRegex, PrefixClosureCompilesForTheCommonSyntax) {
  for (const auto& p : patterns()) {
    StreamRegex re(p);
    EXPECT_TRUE(re.incremental()) << "no incremental resume for " << p << " ("
                                  << regex_prefix_closure(p).value_or("unsupported") << ")";
  }
}

TEST(StreamRegex, InvalidPatternIsUsageError) {
  EXPECT_THROW(StreamRegex("(open"), UsageError);
  EXPECT_THROW(StreamRegex("a**"), UsageError);
}

TEST(StreamRegex, UnsupportedSyntaxFallsBackCorrectly) {
  // A flag change in the middle is outside the rewriter: search still works, from the start.
  StreamRegex re("a(?i)b");
  EXPECT_FALSE(re.incremental());
  std::size_t resume = 99;
  EXPECT_EQ(incremental(re, {"xxa", "B"}, &resume).end, 4u);
  Outcome none = incremental(re, {"xxxx", "yyyy"}, &resume);
  EXPECT_FALSE(none.found);
  EXPECT_EQ(resume, 0u);
}

TEST(StreamRegex, ResumeSkipsDeadBytes) {
  StreamRegex re("\r\n\r\n");
  std::string junk(1000, 'x');
  std::size_t resume = 0;
  EXPECT_FALSE(incremental(re, {junk}, &resume).found);
  EXPECT_EQ(resume, 1000u) << "nothing in 1000 x's can start a match";
  EXPECT_FALSE(incremental(re, {junk + "\r\n\r"}, &resume).found);
  EXPECT_EQ(resume, 1000u) << "the partial terminator stays live";
  StreamRegex lazy("a.*b");
  EXPECT_FALSE(incremental(lazy, {"zzzazzzz"}, &resume).found);
  EXPECT_EQ(resume, 3u) << "a match could still start at the 'a'";
}

TEST(StreamRegex, MatchesStraddlingChunksLikeAFullRescan) {
  std::mt19937 rng(20240611);
  const std::string alphabet = "abc\r\n x";
  std::size_t compared = 0;
  std::size_t found = 0;
  for (const auto& p : patterns()) {
    StreamRegex re(p);
    for (int trial = 0; trial < 300; ++trial) {
      std::uniform_int_distribution<int> len(0, 40);
      std::uniform_int_distribution<int> ch(0, static_cast<int>(alphabet.size()) - 1);
      std::string text;
      const int n = len(rng);
      for (int i = 0; i < n; ++i) text += alphabet[static_cast<std::size_t>(ch(rng))];
      std::vector<std::string> chunks;
      std::size_t pos = 0;
      while (pos < text.size()) {
        std::uniform_int_distribution<std::size_t> step(1, 6);
        const std::size_t k = std::min(step(rng), text.size() - pos);
        chunks.push_back(text.substr(pos, k));
        pos += k;
      }
      const Outcome want = rescan(p, chunks);
      const Outcome got = incremental(re, chunks, nullptr);
      ++compared;
      if (want.found) ++found;
      ASSERT_EQ(got, want) << "pattern " << p << " text '" << text << "' chunks " << chunks.size();
    }
  }
  EXPECT_GT(found, compared / 10) << "the random texts should match often enough to test something";
}

}  // namespace
}  // namespace tether::detail

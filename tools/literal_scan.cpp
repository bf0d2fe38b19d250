#include "literal_scan.hpp"

#include <cstdint>
#include <string>
#include <utility>

namespace tether::tools::detail {

int digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return 99;
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

namespace {

/// The string-literal part of the parser (literal.cpp): one class of its own.
class StringScanner {
 public:
  StringScanner(std::string_view s, std::size_t& pos) : s_(s), pos_(pos) {}

  void read_string(std::string& out, bool raw, bool bytes) {
    const std::size_t open = pos_;
    const char q = peek();
    const bool triple = peek(1) == q && peek(2) == q;
    pos_ += triple ? 3 : 1;
    for (;;) {
      if (at_end()) fail(open, "unterminated string literal");
      const char c = s_[pos_];
      if (c == q && (!triple || (peek(1) == q && peek(2) == q))) {
        pos_ += triple ? 3 : 1;
        return;
      }
      if ((c == '\n' || c == '\r') && !triple)
        fail(open, "unterminated string literal (a newline inside quotes)");
      if (bytes && static_cast<unsigned char>(c) >= 0x80)
        fail(pos_, "bytes can only contain ASCII characters");
      if (c != '\\') {
        out += c;
        ++pos_;
        continue;
      }
      const std::size_t esc = pos_;
      if (pos_ + 1 >= s_.size()) fail(open, "unterminated string literal");
      const char e = s_[pos_ + 1];
      if (raw) {
        // Raw: the backslash stays, and it only protects the next character from ending the string.
        out += '\\';
        out += e;
        pos_ += 2;
        continue;
      }
      pos_ += 2;
      switch (e) {
        case '\n': break;  // line continuation
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case 'x': {
          const std::uint32_t v = read_hex(2, esc);
          if (bytes) {
            out += static_cast<char>(v);
          } else {
            append_utf8(out, v);
          }
          break;
        }
        case 'u':
        case 'U': {
          if (bytes) {
            out += '\\';
            out += e;
            break;
          }
          const std::uint32_t v = read_hex(e == 'u' ? 4 : 8, esc);
          if (v > 0x10FFFF) fail(esc, "\\U escape beyond U+10FFFF");
          if (v >= 0xD800 && v <= 0xDFFF) fail(esc, "surrogate code points cannot be sent (not valid UTF-8)");
          append_utf8(out, v);
          break;
        }
        case 'N':
          if (bytes) {
            out += "\\N";
            break;
          }
          fail(esc, "\\N{...} escapes are not supported; use \\u or \\U");
        default:
          if (e >= '0' && e <= '7') {
            std::uint32_t v = static_cast<std::uint32_t>(e - '0');
            for (int i = 0; i < 2 && peek() >= '0' && peek() <= '7' && !at_end(); ++i) {
              v = v * 8 + static_cast<std::uint32_t>(peek() - '0');
              ++pos_;
            }
            if (bytes) {
              out += static_cast<char>(v & 0xFF);
            } else {
              append_utf8(out, v);
            }
          } else {
            // Python keeps unknown escapes as they are.
            out += '\\';
            pos_ -= 1;
          }
      }
    }
  }

  std::uint32_t read_hex(int n, std::size_t esc) {
    std::uint32_t v = 0;
    for (int i = 0; i < n; ++i) {
      const int d = at_end() ? 99 : digit_value(peek());
      if (d >= 16)
        fail(esc, "truncated \\" + std::string(1, s_[esc + 1]) + " escape (needs " + std::to_string(n) +
                      " hex digits)");
      v = v * 16 + static_cast<std::uint32_t>(d);
      ++pos_;
    }
    return v;
  }

 private:
  [[noreturn]] void fail(std::size_t pos, std::string message) {
    throw LiteralFailure{pos, std::move(message)};
  }
  bool at_end() const { return pos_ >= s_.size(); }
  char peek(std::size_t ahead = 0) const { return pos_ + ahead < s_.size() ? s_[pos_ + ahead] : '\0'; }

  std::string_view s_;
  std::size_t& pos_;
};

}  // namespace

void scan_string(std::string_view text, std::size_t& pos, bool raw, bool bytes, std::string& out) {
  StringScanner(text, pos).read_string(out, raw, bytes);
}

}  // namespace tether::tools::detail

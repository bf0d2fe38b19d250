#include "literal.hpp"

#include <gtest/gtest.h>

namespace tether::tools {
namespace {

TEST(Literal, Ints) {
  EXPECT_EQ(parse_literal("42").value(), Literal::of(brine::Value(42)));
}

}  // namespace
}  // namespace tether::tools

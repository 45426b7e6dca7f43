// resident_bytes(): this process's resident memory grows by what it touches; a
// process that is gone has none.
#include "common/process_memory.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <memory>

namespace multinode::detail {
namespace {

TEST(ProcessMemory, GrowsByWhatThisProcessTouches) {
  const auto before = resident_bytes(::getpid());
  ASSERT_TRUE(before.has_value());
  EXPECT_GT(*before, 0u);
  constexpr std::size_t size = std::size_t{64} * 1024 * 1024;
  const std::unique_ptr<char[]> block(new char[size]);
  std::memset(block.get(), 1, size);  // every page resident now
  const auto after = resident_bytes(::getpid());
  ASSERT_TRUE(after.has_value());
  EXPECT_GE(*after, *before + size / 2) << *before << " -> " << *after;
  EXPECT_EQ(block[size - 1], 1);
}

TEST(ProcessMemory, AProcessThatIsGoneHasNone) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_FALSE(resident_bytes(child).has_value());
}

}  // namespace
}  // namespace multinode::detail

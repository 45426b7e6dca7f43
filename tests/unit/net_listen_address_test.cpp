// Options::listen's entries: HOST:PORT[=NAME], and the reasons a malformed one is refused.
#include "net/listeners.hpp"

#include <gtest/gtest.h>

namespace multinode::detail {
namespace {

TEST(ListenAddress, HostPortAndName) {
  auto a = parse_listen_address("127.0.0.1:8080=web");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8080);
  EXPECT_EQ(a->name, "web");
  a = parse_listen_address(":0");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "");
  EXPECT_EQ(a->port, 0);
  EXPECT_EQ(a->name, "");
  a = parse_listen_address("[::1]:443=https.v6");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "[::1]");
  EXPECT_EQ(a->name, "https.v6");
}

TEST(ListenAddress, MalformedEntriesSayWhy) {
  for (const char* bad : {"", "8080", "host:", "host:65536", "host:-1", "host:80x", "::1:80",
                          "h:80=", "h:80=a:b", "h:80=sp ace", "h:123456"}) {
    std::string why;
    EXPECT_FALSE(parse_listen_address(bad, &why)) << bad;
    EXPECT_NE(why.find(bad), std::string::npos) << why;
  }
  EXPECT_FALSE(parse_listen_address("h:80=" + std::string(256, 'n')));
  EXPECT_TRUE(parse_listen_address("h:80=" + std::string(255, 'n')));
}

}  // namespace
}  // namespace multinode::detail

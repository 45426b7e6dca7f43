// The texts and addresses of systemd's notification protocol (common/sd_notify.hpp).
#include "common/sd_notify.hpp"

#include "common/environment.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <string>

namespace multinode::detail {
namespace {

TEST(SdNotify, PathSocketKeepsItsNul) {
  const auto address = parse_notify_socket("/run/systemd/notify");
  ASSERT_TRUE(address.has_value());
  EXPECT_EQ(address->address.sun_family, AF_UNIX);
  EXPECT_STREQ(address->address.sun_path, "/run/systemd/notify");
  EXPECT_EQ(address->length, offsetof(sockaddr_un, sun_path) + std::strlen("/run/systemd/notify") + 1);
}

TEST(SdNotify, AbstractNameStartsWithNulAndHasNoTrailingOne) {
  const auto address = parse_notify_socket("@name");
  ASSERT_TRUE(address.has_value());
  EXPECT_EQ(address->address.sun_path[0], '\0');
  EXPECT_EQ(std::string(address->address.sun_path + 1, 4), "name");
  EXPECT_EQ(address->length, offsetof(sockaddr_un, sun_path) + 5);
}

TEST(SdNotify, UnusableSocketNames) {
  EXPECT_FALSE(parse_notify_socket(nullptr));
  EXPECT_FALSE(parse_notify_socket(""));
  EXPECT_FALSE(parse_notify_socket("@"));
  EXPECT_FALSE(parse_notify_socket("/"));
  EXPECT_FALSE(parse_notify_socket("relative/path"));
  EXPECT_FALSE(parse_notify_socket("vsock:2:1234"));  // systemd's VSOCK form is not spoken
  const std::size_t room = sizeof(sockaddr_un::sun_path);
  EXPECT_TRUE(parse_notify_socket(("/" + std::string(room - 2, 'x')).c_str()));  // NUL still fits
  EXPECT_FALSE(parse_notify_socket(("/" + std::string(room - 1, 'x')).c_str()));
  EXPECT_TRUE(parse_notify_socket(("@" + std::string(room - 1, 'x')).c_str()));
  EXPECT_FALSE(parse_notify_socket(("@" + std::string(room, 'x')).c_str()));
}

TEST(SdNotify, WatchdogIntervalIsHalfOfWatchdogUsecForThisPid) {
  EXPECT_EQ(watchdog_interval("200000", nullptr, 42), std::chrono::microseconds(100000));
  EXPECT_EQ(watchdog_interval("200000", "42", 42), std::chrono::microseconds(100000));
  EXPECT_EQ(watchdog_interval("1", nullptr, 42), std::chrono::microseconds(1));  // never zero
  EXPECT_FALSE(watchdog_interval("200000", "43", 42));                           // another process's watchdog
  EXPECT_FALSE(watchdog_interval("200000", "", 42));  // a WATCHDOG_PID that is no pid
  EXPECT_FALSE(watchdog_interval(nullptr, nullptr, 42));
  EXPECT_FALSE(watchdog_interval("0", nullptr, 42));
  EXPECT_FALSE(watchdog_interval("-5", nullptr, 42));
  EXPECT_FALSE(watchdog_interval("10s", nullptr, 42));
}

TEST(SdNotify, MessageTexts) {
  EXPECT_EQ(ready_message(4242, "serving on 127.0.0.1:8080 with 4 processes"),
            "READY=1\nMAINPID=4242\nSTATUS=serving on 127.0.0.1:8080 with 4 processes");
  EXPECT_EQ(ready_message(7, ""), "READY=1\nMAINPID=7");
  EXPECT_EQ(reloading_message(123456789, "rolling restart: 0 of 4 replaced"),
            "RELOADING=1\nMONOTONIC_USEC=123456789\nSTATUS=rolling restart: 0 of 4 replaced");
  EXPECT_EQ(stopping_message("stopping: SIGTERM"), "STOPPING=1\nSTATUS=stopping: SIGTERM");
  EXPECT_EQ(status_message("rolling restart: 2 of 4 replaced"), "STATUS=rolling restart: 2 of 4 replaced");
  EXPECT_EQ(status_message(""), "");
  // A newline in a status would start a key of its own.
  EXPECT_EQ(stopping_message("a\nREADY=1"), "STOPPING=1\nSTATUS=a READY=1");
}

TEST(SdNotify, MonotonicUsecIsClockMonotonic) {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const std::uint64_t before = static_cast<std::uint64_t>(now.tv_sec) * 1000000u + now.tv_nsec / 1000u;
  const std::uint64_t stamp = monotonic_usec();
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const std::uint64_t after = static_cast<std::uint64_t>(now.tv_sec) * 1000000u + now.tv_nsec / 1000u;
  EXPECT_LE(before, stamp);
  EXPECT_LE(stamp, after);
}

TEST(SdNotify, DisabledWithoutNotifySocketAndTheVariablesAreRemoved) {
  ::setenv("WATCHDOG_USEC", "1000000", 1);
  ::unsetenv("NOTIFY_SOCKET");
  SdNotifier notifier = SdNotifier::from_environment();
  EXPECT_FALSE(notifier.enabled());
  notifier.send("READY=1");  // nothing to send to: no effect
  EXPECT_EQ(::getenv("WATCHDOG_USEC"), nullptr);
  ::setenv("NOTIFY_SOCKET", "@multinode-sd-notify-unit-test", 1);
  ::setenv("WATCHDOG_USEC", "1000000", 1);
  notifier = SdNotifier::from_environment();
  EXPECT_TRUE(notifier.enabled());
  EXPECT_EQ(notifier.watchdog_interval(), std::chrono::microseconds(500000));
  EXPECT_EQ(::getenv("NOTIFY_SOCKET"), nullptr);
  EXPECT_EQ(::getenv("WATCHDOG_USEC"), nullptr);
}

TEST(SdNotify, WorkersNeverInheritTheVariables) {
  EXPECT_TRUE(environment::is_own_entry("NOTIFY_SOCKET=/run/systemd/notify"));
  EXPECT_TRUE(environment::is_own_entry("WATCHDOG_USEC=30000000"));
  EXPECT_TRUE(environment::is_own_entry("WATCHDOG_PID=1"));
  EXPECT_FALSE(environment::is_own_entry("NOTIFY_SOCKETS=/x"));
}

}  // namespace
}  // namespace multinode::detail
